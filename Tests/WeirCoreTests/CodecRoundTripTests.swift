import Testing
import WeirCore
import WeirCompression

/// Round trips: every reading, drop row, gateway and id comes back bit for bit.
@Suite struct CodecRoundTripTests {
    func roundTrip(_ batch: Batch, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
        let bytes = BatchCodec.encode(batch)
        let back = try BatchCodec.decode(bytes)
        #expect(back.gateway == batch.gateway, sourceLocation: sourceLocation)
        #expect(back.id == batch.id, sourceLocation: sourceLocation)
        #expect(back.drops == batch.drops, sourceLocation: sourceLocation)
        #expect(back.readings.count == batch.readings.count, sourceLocation: sourceLocation)
        #expect(CodecFixtures.sameBits(back.readings, CodecFixtures.expectedOrder(batch.readings)),
                sourceLocation: sourceLocation)
        return bytes
    }

    @Test func emptyBatchKeepsItsNames() throws {
        let bytes = try roundTrip(Batch(gateway: "gw-1", id: "gw-1:000001", readings: []))
        #expect(bytes.starts(with: Array("WEIR".utf8)))
        #expect(bytes[4] == 1)
    }

    @Test func oneReading() throws {
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: [Reading(device: "d1", metric: "temp", ts: 1_732_540_000_123, value: 21.5)]))
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func randomMixedBatches(seed: UInt64) throws {
        _ = try roundTrip(CodecFixtures.mixedBatch(seed: seed))
    }

    @Test(arguments: [1, 2, 3, 63, 64, 65, 66, 127, 128, 129, 130, 1000])
    func blockBoundaries(count: Int) throws {
        var rng = SplitMix64(seed: UInt64(count))
        let quantized = (0..<count).map { _ in
            Reading(device: "d", metric: "q", ts: Int64.random(in: -1_000_000...1_000_000, using: &rng),
                    value: Double(Int.random(in: -10_000...10_000, using: &rng)) / 100)
        }
        let noisy = (0..<count).map { _ in
            Reading(device: "d", metric: "n", ts: Int64.random(in: .min ... .max, using: &rng),
                    value: Double(bitPattern: rng.next()))
        }
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: quantized + noisy))
    }

    @Test func sixtyFiveThousandFiveHundredThirtySixSeries() throws {
        let readings = (0..<65_536).map { i in
            Reading(device: "device-\(i / 16)", metric: "m\(i % 16)", ts: 1_700_000_000_000 + Int64(i), value: Double(i) / 4)
        }
        let bytes = try roundTrip(Batch(gateway: "g", id: "i", readings: readings.reversed()))
        // Per series: name indices, a count, a ts and a value — a few bytes, not a header each.
        #expect(bytes.count < 65_536 * 12)
    }

    @Test func specialValuesKeepTheirBits() throws {
        let specials: [Double] = [
            -0.0, 0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude,
            Double(bitPattern: 0x000F_FFFF_FFFF_FFFF), .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
            .ulpOfOne, 1e-300, 0.1, 0.30000000000000004, 123_456_789.125, -1,
            // Not valid readings, but the codec must neither crash nor alter them.
            .nan, -.nan, Double(bitPattern: 0x7FF0_0000_DEAD_BEEF), .infinity, -.infinity,
        ]
        let readings = specials.enumerated().map { Reading(device: "d", metric: "m", ts: Int64($0.offset), value: $0.element) }
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: readings + readings.reversed()))
        // A series of only −0.0 and a series that mixes decimals with −0.0 fall back to XOR and still keep the sign.
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: (0..<100).map { Reading(device: "z", metric: "m", ts: Int64($0), value: -0.0) }))
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: (0..<100).map { Reading(device: "z", metric: "m", ts: Int64($0), value: $0 == 50 ? -0.0 : 1.5) }))
    }

    @Test func extremeTimestampsAndHugeDeltas() throws {
        let times: [Int64] = [
            .min, .max, 0, -1, .min, .max, .max, .min, -62_135_596_800_000, // year 1
            -1_000, 253_402_300_799_999, // 9999-12-31
            1_732_540_000_000, 1_732_540_000_000, 1_732_540_000_000, // duplicates
            1_732_539_000_000, 1_732_541_000_000, 1_732_540_500_000, // irregular, out of order
        ]
        let readings = times.enumerated().map { Reading(device: "d", metric: "t", ts: $0.element, value: Double($0.offset)) }
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: readings))
        // Alternating extremes in a long series: every block at full width.
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: (0..<300).map {
            Reading(device: "d", metric: "t", ts: $0 % 2 == 0 ? .min : .max, value: 1)
        }))
    }

    /// Steady clocks with jitter, drifting periods, clocks that accumulate jitter, bursts
    /// and gaps: each picks a different ts encoding, and all must come back exactly.
    @Test func timestampShapes() throws {
        var rng = SplitMix64(seed: 77)
        let base: Int64 = 1_732_540_000_000
        let steady = (0..<500).map { base + Int64($0) * 1000 + Int64.random(in: -3...3, using: &rng) }
        let drifting = (0..<500).map { base + Int64((Double($0) * 1000.37).rounded()) }
        var t = base
        let wandering = (0..<500).map { _ in t += 1000 + Int64.random(in: -5...5, using: &rng); return t }
        let bursty = (0..<500).map { i in base + Int64(i / 50) * 3_600_000 + Int64(i % 50) }
        let backwards = (0..<500).map { base - Int64($0) * 977 }
        let shapes = [steady, drifting, wandering, bursty, backwards]
        let readings = shapes.enumerated().flatMap { s, times in
            times.map { Reading(device: "shape\(s)", metric: "m", ts: $0, value: 1) }
        }
        let bytes = try roundTrip(Batch(gateway: "g", id: "i", readings: readings))
        // Regular-ish clocks cost about a byte a reading or less for ts and value together.
        #expect(bytes.count < readings.count)
    }

    @Test func duplicateReadingsAllSurvive() throws {
        let r = Reading(device: "d", metric: "t", ts: 5, value: 2.5)
        let bytes = try roundTrip(Batch(gateway: "g", id: "i", readings: Array(repeating: r, count: 1000)))
        #expect(bytes.count < 100)
    }

    @Test func dropLedgerRowsKeepOrderAndExtremes() throws {
        let drops = [
            DropRecord(device: "d1", metric: "temp", from: 1_732_000_000_000, to: 1_732_000_600_000, count: 600),
            DropRecord(device: "d0", metric: "temp", from: .max, to: .min, count: .min),
            DropRecord(device: "d1", metric: "temp", from: 0, to: 0, count: 0),
        ]
        _ = try roundTrip(Batch(gateway: "g", id: "i", readings: [Reading(device: "d1", metric: "hum", ts: 1, value: 40)], drops: drops))
        _ = try roundTrip(Batch(gateway: "", id: "", readings: [], drops: drops))
    }

    @Test func unicodeGatewayAndIdRoundTrip() throws {
        _ = try roundTrip(Batch(gateway: "gw-é-€-😀", id: String(repeating: "x", count: 10_000), readings: []))
    }

    @Test func realisticSensorDataIsUnderTwoBytesAReading() throws {
        var rng = SplitMix64(seed: 42)
        var readings: [Reading] = []
        for d in 0..<10 { readings += CodecFixtures.sensorWalk(device: "sensor-\(d)", metric: "temp", count: 1000, rng: &rng) }
        let bytes = try roundTrip(Batch(gateway: "gw-1", id: "gw-1:1", readings: readings))
        let perReading = Double(bytes.count) / Double(readings.count)
        #expect(perReading <= 2.0, "\(perReading) bytes per reading")
        let wire = try WireBatch.encode(Batch(gateway: "gw-1", id: "gw-1:1", readings: readings))
        #expect(Double(wire.count) / Double(readings.count) <= 2.0)
    }

    @Test func constantSeriesCostsAlmostNothing() throws {
        let readings = (0..<6400).map { Reading(device: "d", metric: "t", ts: 1_700_000_000_000 + Int64($0) * 1000, value: 42) }
        let bytes = try roundTrip(Batch(gateway: "g", id: "i", readings: readings))
        #expect(bytes.count < 500)
    }

    @Test func wireBatchRoundTripsAndBoundsTheDecompressedSize() throws {
        let batch = CodecFixtures.mixedBatch(seed: 11)
        let wire = try WireBatch.encode(batch)
        #expect(wire.starts(with: [0x28, 0xB5, 0x2F, 0xFD]))
        let back = try WireBatch.decode(wire, maxSize: 1 << 20)
        #expect(CodecFixtures.sameBits(back.readings, CodecFixtures.expectedOrder(batch.readings)))
        #expect(back.drops == batch.drops)
        // The raw codec is accepted as well.
        #expect(try WireBatch.decode(BatchCodec.encode(batch), maxSize: 1 << 20).readings.count == batch.readings.count)
        let raw = BatchCodec.encode(batch)
        #expect(throws: CompressionError.self) { try WireBatch.decode(wire, maxSize: raw.count - 1) }
        #expect(throws: CompressionError.self) { try WireBatch.decode(raw, maxSize: raw.count - 1) }
        #expect(throws: CompressionError.self) { try WireBatch.decode(Array("{\"gateway\":1}".utf8), maxSize: 1 << 20) }
        #expect(throws: (any Error).self) { try WireBatch.decode([], maxSize: 1 << 20) }
    }

    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        // The slice-by-8 path and the byte path agree.
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let whole = CRC32C.checksum(long)
        let split = long.withUnsafeBytes { raw in
            CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[0..<13])), UnsafeRawBufferPointer(rebasing: raw[13...]))
        }
        #expect(whole == split)
    }
}
