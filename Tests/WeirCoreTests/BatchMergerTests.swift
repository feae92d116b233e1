import Testing
import WeirCore

/// `BatchMerger` gives exactly the bytes of decoding its parts, concatenating their
/// readings and encoding them (what the edge did before it merged as columns).
@Suite struct BatchMergerTests {
    static let nameSets: [[String]] = [
        ["dev-1", "dev-2", "dev-10", "a", "temp", "Z", "z"],
        ["temp", "hum", "x", "temp2", "dev-1"],                   // metric names that are also device names
        ["é", "e\u{301}", "Ω", "dev", "temp", "Å", "A\u{30A}"],  // canonically equivalent spellings
    ]

    static func part(_ rng: inout SplitMix64, names: [String], count: Int, decimal: Bool, drops: [DropRecord]) -> [UInt8] {
        var readings: [Reading] = []
        for _ in 0..<count {
            readings.append(Reading(device: names[Int(rng.next() % UInt64(names.count))],
                                    metric: names[Int(rng.next() % UInt64(names.count))],
                                    ts: 1_700_000_000_000 + Int64(rng.next() % 50_000),
                                    value: decimal ? Double(Int(rng.next() % 500)) / 10 : Double(bitPattern: rng.next())))
        }
        return BatchCodec.encode(Batch(gateway: "part-gw", id: "part-\(count)", readings: readings, drops: drops))
    }

    @Test(arguments: Array(0..<60))
    func sameBytesAsDecodeConcatenateEncode(trial: Int) throws {
        var rng = SplitMix64(seed: UInt64(trial) &+ 11)
        let names = Self.nameSets[trial % Self.nameSets.count]
        var merger = BatchMerger()
        var concatenated: [Reading] = []
        for p in 0..<(1 + trial % 5) {
            let partDrops = p == 1 ? [DropRecord(device: "zz", metric: "q", from: 1, to: 2, count: 1)] : []
            let bytes = Self.part(&rng, names: names, count: [0, 1, 3, 64, 300, 2000][(trial + p) % 6], decimal: trial % 2 == 0, drops: partDrops)
            let added = try merger.add(bytes)
            let readings = try BatchCodec.decode(bytes).readings
            #expect(added == readings.count)
            concatenated += readings
        }
        let drops = trial % 3 == 0 ? [DropRecord(device: names[0], metric: "new-metric", from: 3, to: 8, count: 2)] : []
        #expect(merger.readingCount == concatenated.count)
        let expected = BatchCodec.encode(Batch(gateway: "gw", id: "m\(trial)", readings: concatenated, drops: drops))
        #expect(merger.encode(gateway: "gw", id: "m\(trial)", drops: drops) == expected)
    }

    @Test func aBatchThatFailsAddsNothing() throws {
        var rng = SplitMix64(seed: 3)
        let good = Self.part(&rng, names: Self.nameSets[0], count: 300, decimal: true, drops: [])
        let other = Self.part(&rng, names: Self.nameSets[1], count: 200, decimal: true, drops: [])
        var merger = BatchMerger()
        try merger.add(good)
        var damaged = other
        damaged[damaged.count / 2] ^= 0x55
        #expect(throws: BatchCodecError.self) { try merger.add(damaged) }
        #expect(throws: BatchCodecError.self) { try merger.add(other, expecting: 199) }
        #expect(merger.readingCount == 300)
        #expect(merger.encode(gateway: "g", id: "i", drops: []) == BatchCodec.encode(Batch(gateway: "g", id: "i", readings: try BatchCodec.decode(good).readings)))
        let times = try BatchCodec.decode(good).readings.map(\.ts)
        #expect(merger.timeRange == times.min()!...times.max()!)
    }
}
