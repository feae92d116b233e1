/// Readings grouped by series: series sorted by `(device, metric)`, and for each series
/// the indices of its readings in their original order (a stable counting sort).
struct SeriesGrouping {
    /// The distinct series, ascending.
    var keys: [SeriesKey] = []
    /// Reading indices, series after series.
    var order: [Int32] = []
    /// `order[offsets[s]..<offsets[s + 1]]` are the readings of `keys[s]`.
    var offsets: [Int] = [0]

    init(_ readings: [Reading]) {
        let n = readings.count
        guard n > 0 else { return }
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

        // Rank the series by key, then place readings by rank (stable).
        let sorted = firstSeen.indices.sorted { firstSeen[$0] < firstSeen[$1] }
        var rank = [Int32](repeating: 0, count: firstSeen.count)
        for (r, s) in sorted.enumerated() { rank[s] = Int32(r) }
        keys = sorted.map { firstSeen[$0] }

        var counts = [Int](repeating: 0, count: keys.count + 1)
        for i in 0..<n {
            seriesOf[i] = rank[Int(seriesOf[i])]
            counts[Int(seriesOf[i]) + 1] += 1
        }
        for s in 0..<keys.count { counts[s + 1] += counts[s] }
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
