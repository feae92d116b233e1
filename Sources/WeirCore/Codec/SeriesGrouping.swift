/// Readings grouped by series: series sorted by `(device, metric)`, and for each series
/// the indices of its readings in their original order (a stable grouping), plus the
/// start of the string table (the series' names in order of first use).
///
/// Built for memory as much as for speed: a 50,000-reading batch of 30,000 series is
/// grouped in about 1.5 MB of scratch. Names are numbered per distinct device and
/// metric (not per series), each reading gets one packed 64-bit sort key
/// `(device rank, metric rank, index)`, and one sort of those keys gives the grouping.
/// Batches with non-ASCII names (where `String` equality is canonical equivalence, not
/// byte equality) or of more than 2^21 readings take the general path, a dictionary per
/// series; both paths give the same result.
struct SeriesGrouping {
    /// The string table so far: device and metric names in order of first use by the
    /// series, ascending.
    var names: [String] = []
    /// Per series: the table indices of its device and metric.
    var seriesNames: [(device: Int32, metric: Int32)] = []
    /// Reading indices, series after series.
    var order: [Int32] = []
    /// `order[offsets[s]..<offsets[s + 1]]` are the readings of series `s`.
    var offsets: [Int] = [0]

    var seriesCount: Int { seriesNames.count }

    init(_ readings: [Reading]) {
        guard !readings.isEmpty else { return }
        if !groupPacked(readings) {
            groupByDictionary(readings)
        }
    }

    // MARK: Packed sort keys (ASCII names)

    /// Distinct strings numbered in order of first appearance.
    private struct Numbering {
        var ids: [String: Int32] = [:]
        var strings: [String] = []
        /// The id of `s`, or `nil` when `s` is not ASCII (the caller gives up). The
        /// check comes first: a non-ASCII string can equal an ASCII one (U+212A KELVIN
        /// SIGN is "K"), and which spelling the table keeps must not depend on the path.
        mutating func id(_ s: String) -> Int32? {
            guard s.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
            if let i = ids[s] { return i }
            let i = Int32(strings.count)
            strings.append(s)
            ids[s] = i
            return i
        }
        /// `rank[id]`: the position of each string in ascending order.
        func ranks() -> (rank: [Int], sorted: [Int32]) {
            let sorted = strings.indices.sorted { strings[$0] < strings[$1] }.map { Int32($0) }
            var rank = [Int](repeating: 0, count: strings.count)
            for (r, id) in sorted.enumerated() { rank[Int(id)] = r }
            return (rank, sorted)
        }
    }

    /// Groups through one sort of packed `(device rank, metric rank, index)` keys.
    /// Returns `false` (and leaves `self` empty) when the batch needs the general path.
    private mutating func groupPacked(_ readings: [Reading]) -> Bool {
        let n = readings.count
        var bits = 1
        while (1 << bits) <= n { bits += 1 }
        // Names are at most one per reading each, so ranks fit in `bits` too.
        guard 3 * bits <= 64 else { return false }
        var devices = Numbering()
        var metrics = Numbering()
        // First the ids, `device << 32 | metric`; rewritten as sort keys below.
        var keys = [UInt64](repeating: 0, count: n)
        let ok = readings.withUnsafeBufferPointer { rs -> Bool in
            var lastDevice = rs[0].device
            var lastMetric = rs[0].metric
            guard var d = devices.id(lastDevice), var m = metrics.id(lastMetric) else { return false }
            for i in 0..<n {
                let r = rs[i]
                // Consecutive readings often share a device or a metric: skip the hash
                // (byte equality, so that every other spelling goes through `id`).
                if !Self.sameBytes(r.device, lastDevice) {
                    guard let id = devices.id(r.device) else { return false }
                    d = id
                    lastDevice = r.device
                }
                if !Self.sameBytes(r.metric, lastMetric) {
                    guard let id = metrics.id(r.metric) else { return false }
                    m = id
                    lastMetric = r.metric
                }
                keys[i] = UInt64(UInt32(d)) << 32 | UInt64(UInt32(m))
            }
            return true
        }
        guard ok else { return false }

        let (deviceRank, devicesSorted) = devices.ranks()
        let (metricRank, metricsSorted) = metrics.ranks()
        let mask: UInt64 = (1 << UInt64(bits)) - 1
        for i in 0..<n {
            let k = keys[i]
            let d = UInt64(deviceRank[Int(k >> 32)])
            let m = UInt64(metricRank[Int(k & 0xFFFF_FFFF)])
            keys[i] = d << UInt64(2 * bits) | m << UInt64(bits) | UInt64(i)
        }
        keys.sort()

        // Series boundaries, and the string table in order of first use. A metric spelled
        // like a device shares its table entry.
        var seriesCount = 0
        var previous = UInt64.max
        for k in keys where k >> UInt64(bits) != previous {
            previous = k >> UInt64(bits)
            seriesCount += 1
        }
        var deviceEntry = [Int32](repeating: -1, count: devices.strings.count)
        var metricEntry = [Int32](repeating: -1, count: metrics.strings.count)
        let metricAsDevice: [Int32] = metrics.strings.map { devices.ids[$0] ?? -1 }
        order = [Int32](repeating: 0, count: n)
        offsets = []
        offsets.reserveCapacity(seriesCount + 1)
        seriesNames.reserveCapacity(seriesCount)
        previous = UInt64.max
        for (i, k) in keys.enumerated() {
            order[i] = Int32(truncatingIfNeeded: k & mask)
            let series = k >> UInt64(bits)
            if series == previous { continue }
            previous = series
            offsets.append(i)
            let d = Int(devicesSorted[Int(series >> UInt64(bits))])
            let m = Int(metricsSorted[Int(series & mask)])
            if deviceEntry[d] < 0 {
                deviceEntry[d] = Int32(names.count)
                names.append(devices.strings[d])
            }
            let alias = Int(metricAsDevice[m])
            if alias >= 0 {
                if deviceEntry[alias] < 0 {
                    deviceEntry[alias] = Int32(names.count)
                    names.append(devices.strings[alias])
                }
                metricEntry[m] = deviceEntry[alias]
            } else if metricEntry[m] < 0 {
                metricEntry[m] = Int32(names.count)
                names.append(metrics.strings[m])
            }
            seriesNames.append((deviceEntry[d], metricEntry[m]))
        }
        offsets.append(n)
        return true
    }

    @inline(__always)
    private static func sameBytes(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8)
    }

    // MARK: General path

    /// One dictionary entry per series; the names' spellings are those of each series'
    /// first reading.
    private mutating func groupByDictionary(_ readings: [Reading]) {
        let n = readings.count
        var seriesOf = [Int32](repeating: 0, count: n)
        var firstSeen: [SeriesKey] = []
        var indexOf: [SeriesKey: Int32] = [:]
        readings.withUnsafeBufferPointer { rs in
            // Consecutive readings of the same series skip the hash lookup.
            var lastDevice = rs[0].device
            var lastMetric = rs[0].metric
            var last: Int32 = 0
            firstSeen.append(SeriesKey(device: lastDevice, metric: lastMetric))
            indexOf[firstSeen[0]] = 0
            for i in 1..<n {
                let r = rs[i]
                if r.device == lastDevice && r.metric == lastMetric {
                    seriesOf[i] = last
                    continue
                }
                let key = SeriesKey(device: r.device, metric: r.metric)
                if let s = indexOf[key] {
                    last = s
                } else {
                    last = Int32(firstSeen.count)
                    firstSeen.append(key)
                    indexOf[key] = last
                }
                lastDevice = r.device
                lastMetric = r.metric
                seriesOf[i] = last
            }
        }
        indexOf = [:]

        // Rank the series by key, then place readings by rank (stable).
        let sorted = firstSeen.indices.sorted { firstSeen[$0] < firstSeen[$1] }
        var rank = [Int32](repeating: 0, count: firstSeen.count)
        for (r, s) in sorted.enumerated() { rank[s] = Int32(r) }
        var table = StringTable()
        seriesNames.reserveCapacity(sorted.count)
        for s in sorted {
            let key = firstSeen[s]
            seriesNames.append((Int32(table.index(key.device)), Int32(table.index(key.metric))))
        }
        names = table.names

        var counts = [Int](repeating: 0, count: sorted.count + 1)
        for i in 0..<n {
            seriesOf[i] = rank[Int(seriesOf[i])]
            counts[Int(seriesOf[i]) + 1] += 1
        }
        for s in 0..<sorted.count { counts[s + 1] += counts[s] }
        offsets = counts
        var next = counts
        order = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            let s = Int(seriesOf[i])
            order[next[s]] = Int32(i)
            next[s] += 1
        }
    }
}
