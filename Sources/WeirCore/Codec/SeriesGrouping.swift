/// Readings grouped by series: series sorted by `(device, metric)`, and for each series
/// the indices of its readings in their original order (a stable grouping), plus the
/// start of the string table (the series' names in order of first use).
///
/// Built for memory as much as for speed, and linear in the readings: names are
/// numbered per distinct device and metric (not per series), a series is a pair of those
/// numbers, only the series are sorted, and the readings are placed by counting.
/// Batches with non-ASCII names (where `String` equality is canonical equivalence, not
/// byte equality) take the general path, a dictionary of string keys per series; both
/// paths give the same result.
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
            guard SeriesGrouping.isASCII(s) else { return nil }
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

    /// Groups through numbered names: each reading's `(device id, metric id)` pair is
    /// packed into one integer and numbered as a series on first appearance (a hash of
    /// an integer, not of strings); only the series are sorted, by the names' ranks, and
    /// the readings are placed by counting, so the work is linear in the readings.
    /// Returns `false` (and leaves `self` empty) when the batch needs the general path.
    private mutating func groupPacked(_ readings: [Reading]) -> Bool {
        let n = readings.count
        guard n < Int(Int32.max) else { return false }
        var devices = Numbering()
        var metrics = Numbering()
        // Per reading its series number; per series its `device << 32 | metric` ids.
        var seriesOf = [Int32](repeating: 0, count: n)
        var seriesIDs: [UInt64] = []
        var seriesNumber: [UInt64: Int32] = [:]
        let ok = readings.withUnsafeBufferPointer { rs -> Bool in
            var lastDevice = rs[0].device
            var lastMetric = rs[0].metric
            guard var d = devices.id(lastDevice), var m = metrics.id(lastMetric) else { return false }
            var lastPair = UInt64.max
            var series: Int32 = 0
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
                let pair = UInt64(UInt32(d)) << 32 | UInt64(UInt32(m))
                if pair != lastPair {
                    lastPair = pair
                    if let known = seriesNumber[pair] {
                        series = known
                    } else {
                        series = Int32(seriesIDs.count)
                        seriesIDs.append(pair)
                        seriesNumber[pair] = series
                    }
                }
                seriesOf[i] = series
            }
            return true
        }
        guard ok else { return false }
        seriesNumber = [:]

        // The series in ascending (device, metric) order, through the names' ranks.
        let (deviceRank, _) = devices.ranks()
        let (metricRank, _) = metrics.ranks()
        let sortKey = seriesIDs.map { UInt64(deviceRank[Int($0 >> 32)]) << 32 | UInt64(metricRank[Int($0 & 0xFFFF_FFFF)]) }
        let sorted = seriesIDs.indices.sorted { sortKey[$0] < sortKey[$1] }

        // The string table in order of first use by the sorted series. A metric spelled
        // like a device shares its table entry.
        var deviceEntry = [Int32](repeating: -1, count: devices.strings.count)
        var metricEntry = [Int32](repeating: -1, count: metrics.strings.count)
        let metricAsDevice: [Int32] = metrics.strings.map { devices.ids[$0] ?? -1 }
        seriesNames.reserveCapacity(sorted.count)
        for s in sorted {
            let d = Int(seriesIDs[s] >> 32)
            let m = Int(seriesIDs[s] & 0xFFFF_FFFF)
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

        place(&seriesOf, sorted: sorted)
        return true
    }

    /// Lays the readings out series after series, in `sorted`'s order (series numbers in
    /// ascending `(device, metric)`), each series' readings in their original order:
    /// counting, not sorting, so linear in the readings. `seriesOf[i]` is reading `i`'s
    /// series number on entry (it is overwritten).
    private mutating func place(_ seriesOf: inout [Int32], sorted: [Int]) {
        var rank = [Int32](repeating: 0, count: sorted.count)
        for (r, s) in sorted.enumerated() { rank[s] = Int32(r) }
        var counts = [Int](repeating: 0, count: sorted.count + 1)
        for i in seriesOf.indices {
            seriesOf[i] = rank[Int(seriesOf[i])]
            counts[Int(seriesOf[i]) + 1] += 1
        }
        for r in 0..<sorted.count { counts[r + 1] += counts[r] }
        offsets = counts
        // Filled in a local array: writes through `self` check its uniqueness each time.
        var placed = [Int32](repeating: 0, count: seriesOf.count)
        for i in seriesOf.indices {
            let r = Int(seriesOf[i])
            placed[counts[r]] = Int32(i)
            counts[r] += 1
        }
        order = placed
    }

    /// Byte equality (not `==`, which is canonical equivalence), eight bytes at a time
    /// over the strings' contiguous UTF-8: this runs for every reading, and walking two
    /// UTF-8 views through their iterators was a sixth of all encoding time.
    @inline(__always)
    private static func sameBytes(_ a: String, _ b: String) -> Bool {
        let equal = a.utf8.withContiguousStorageIfAvailable { pa in
            b.utf8.withContiguousStorageIfAvailable { pb in Self.equalBytes(pa, pb) }
        }
        return (equal ?? nil) ?? a.utf8.elementsEqual(b.utf8)
    }

    @inline(__always)
    static func equalBytes(_ pa: UnsafeBufferPointer<UInt8>, _ pb: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = pa.count
        guard n == pb.count else { return false }
        guard n > 0, let a = pa.baseAddress, let b = pb.baseAddress else { return true }
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var i = 0
        while i + 8 <= n {
            if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < n {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }

    /// Whether every byte is below 0x80, eight at a time.
    @inline(__always)
    static func isASCII(_ s: String) -> Bool {
        let fast = s.utf8.withContiguousStorageIfAvailable { p -> Bool in
            guard let base = p.baseAddress else { return true }
            let raw = UnsafeRawPointer(base)
            var i = 0
            var bits: UInt64 = 0
            while i + 8 <= p.count {
                bits |= raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < p.count {
                bits |= UInt64(base[i])
                i += 1
            }
            return bits & 0x8080_8080_8080_8080 == 0
        }
        return fast ?? s.utf8.allSatisfy { $0 < 0x80 }
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

        // The series in ascending order of their keys; then the readings placed (stable).
        let sorted = firstSeen.indices.sorted { firstSeen[$0] < firstSeen[$1] }
        var table = StringTable()
        seriesNames.reserveCapacity(sorted.count)
        for s in sorted {
            let key = firstSeen[s]
            seriesNames.append((Int32(table.index(key.device)), Int32(table.index(key.metric))))
        }
        names = table.names
        place(&seriesOf, sorted: sorted)
    }
}
