import WeirCore


enum CodecFixtures {
    /// What decoding promises: readings grouped by series in ascending `(device, metric)`
    /// order, original order within a series.
    static func expectedOrder(_ readings: [Reading]) -> [Reading] {
        readings.indices
            .sorted { (readings[$0].series, $0) < (readings[$1].series, $1) }
            .map { readings[$0] }
    }

    /// Equality down to the value's bits (`==` on Double would equate 0.0 and −0.0).
    static func sameBits(_ a: [Reading], _ b: [Reading]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy {
            $0.device == $1.device && $0.metric == $1.metric && $0.ts == $1.ts
                && $0.value.bitPattern == $1.value.bitPattern
        }
    }

    /// A realistic sensor series: 1 s sampling with a few ms of jitter, a 0.1-resolution walk.
    static func sensorWalk(device: String, metric: String, count: Int, rng: inout SplitMix64) -> [Reading] {
        var ts: Int64 = 1_732_540_000_000
        var tenths = 215
        return (0..<count).map { _ in
            ts += 1000 + Int64.random(in: -4...4, using: &rng)
            tenths += Int.random(in: -3...3, using: &rng)
            return Reading(device: device, metric: metric, ts: ts, value: Double(tenths) / 10)
        }
    }

    /// A mixed batch: several series interleaved, quantized and full-precision values, drops.
    static func mixedBatch(seed: UInt64, readings count: Int = 400) -> Batch {
        var rng = SplitMix64(seed: seed)
        var readings: [Reading] = []
        for d in 0..<4 {
            readings += sensorWalk(device: "dev-\(d)", metric: "temp", count: count / 8, rng: &rng)
            readings += (0..<(count / 8)).map { i in
                Reading(device: "dev-\(d)", metric: "noise", ts: 1_700_000_000_000 + Int64(i) * 250,
                        value: Double.random(in: -1e6...1e6, using: &rng))
            }
        }
        readings.shuffle(using: &rng)
        return Batch(gateway: "gw-1", id: "gw-1:\(seed)", readings: readings, drops: [
            DropRecord(device: "dev-0", metric: "temp", from: 1_732_000_000_000, to: 1_732_000_600_000, count: 600),
            DropRecord(device: "dev-9", metric: "hum", from: -5, to: 5, count: 1),
        ])
    }
}
