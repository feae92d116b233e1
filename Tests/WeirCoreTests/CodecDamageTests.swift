import Testing
import WeirCore

/// Decoding is total: damaged, truncated, mutated and hostile inputs give an error with a
/// byte offset inside the input — never a crash, a hang or an outsized allocation.
@Suite struct CodecDamageTests {
    /// A batch that exercises every column kind: scaled and XOR values, 1-, 2- and
    /// many-reading series, several blocks, drops.
    static let sample: [UInt8] = {
        var batch = CodecFixtures.mixedBatch(seed: 99, readings: 160)
        batch.readings.append(Reading(device: "solo", metric: "one", ts: -5, value: -0.0))
        batch.readings.append(Reading(device: "pair", metric: "two", ts: .max, value: 1.25))
        batch.readings.append(Reading(device: "pair", metric: "two", ts: .min, value: 1.5))
        return BatchCodec.encode(batch)
    }()

    /// Rewrites the trailing CRC so a mutation reaches the structure checks behind it.
    static func withValidChecksum(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= 4 else { return bytes }
        var b = bytes
        let crc = b.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(b.count - 4)])) }
        for k in 0..<4 { b[b.count - 4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k))) }
        return b
    }

    /// Decodes; an error must point inside the input. Returns the batch, if any.
    @discardableResult
    static func decodeTotally(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Batch? {
        do {
            return try BatchCodec.decode(bytes)
        } catch {
            #expect(error.offset >= 0 && error.offset <= bytes.count, "\(error)", sourceLocation: sourceLocation)
            #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test func everyTruncationFailsCleanly() {
        let bytes = Self.sample
        for length in 0..<bytes.count {
            let cut = Array(bytes[0..<length])
            #expect(throws: BatchCodecError.self) { try BatchCodec.decode(cut) }
            // With the checksum patched, the structure itself must notice the missing bytes.
            if length >= 10 {
                #expect(Self.decodeTotally(Self.withValidChecksum(cut)) == nil, "prefix of \(length) bytes decoded")
            }
        }
    }

    @Test func everySingleBitFlipIsDetected() {
        let bytes = Self.sample
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: BatchCodecError.self, "bit \(bit)") { try BatchCodec.decode(flipped) }
        }
    }

    @Test func burstsOfDamageAreDetected() {
        var rng = SplitMix64(seed: 7)
        let bytes = Self.sample
        for _ in 0..<500 {
            var damaged = bytes
            let at = Int.random(in: 0..<(bytes.count - 4), using: &rng)
            for k in at..<min(at + Int.random(in: 1...4, using: &rng), bytes.count) { damaged[k] ^= UInt8.random(in: 1...255, using: &rng) }
            #expect(throws: BatchCodecError.self) { try BatchCodec.decode(damaged) }
        }
    }

    /// A few thousand deterministic mutations with the checksum repaired, so they reach the
    /// parser: each decodes to something or fails with an in-bounds error, and whatever
    /// decodes re-encodes and decodes to the same batch.
    @Test func deterministicMutationsNeverCrash() throws {
        var rng = SplitMix64(seed: 2026)
        let seeds = [Self.sample, BatchCodec.encode(CodecFixtures.mixedBatch(seed: 3, readings: 40)),
                     BatchCodec.encode(Batch(gateway: "g", id: "i", readings: [Reading(device: "d", metric: "m", ts: 1, value: 2)]))]
        var decoded = 0
        for round in 0..<3000 {
            var b = seeds[round % seeds.count]
            b.removeLast(4)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<6, using: &rng) {
                case 0: // flip a bit
                    let i = Int.random(in: 0..<b.count, using: &rng)
                    b[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                case 1: // random byte
                    b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 2: // interesting byte: varint continuation, max, zero, width 64/65
                    b[Int.random(in: 0..<b.count, using: &rng)] = [0x80, 0xFF, 0x00, 0x40, 0x41, 0x7F, 0x01].randomElement(using: &rng)!
                case 3: // delete a range
                    let i = Int.random(in: 0..<b.count, using: &rng)
                    b.removeSubrange(i..<min(b.count, i + Int.random(in: 1...8, using: &rng)))
                case 4: // insert bytes
                    let i = Int.random(in: 0...b.count, using: &rng)
                    b.insert(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: i)
                default: // duplicate a range
                    let i = Int.random(in: 0..<b.count, using: &rng)
                    let slice = Array(b[i..<min(b.count, i + Int.random(in: 1...16, using: &rng))])
                    b.insert(contentsOf: slice, at: Int.random(in: 0...b.count, using: &rng))
                }
                if b.count < 6 { b = Array(seeds[0].prefix(6)) }
            }
            // Keep magic and version most of the time so the body is what gets tested.
            if round % 10 != 0 { b.replaceSubrange(0..<5, with: BatchCodec.magic + [BatchCodec.version]) }
            b += [0, 0, 0, 0]
            let input = Self.withValidChecksum(b)
            if let batch = Self.decodeTotally(input) {
                decoded += 1
                let again = try BatchCodec.decode(BatchCodec.encode(batch))
                #expect(again.gateway == batch.gateway && again.id == batch.id && again.drops == batch.drops)
                #expect(CodecFixtures.sameBits(again.readings, CodecFixtures.expectedOrder(batch.readings)))
            }
        }
        // Some mutations (a changed value bit, a changed name) still decode: the test reached past the header.
        #expect(decoded > 100)
    }

    @Test func wrongMagicVersionAndFlagsAreNamed() throws {
        var b = Self.sample
        b[0] = UInt8(ascii: "{")
        #expect(throws: BatchCodecError(.notABatch, at: 0, "the input does not start with the batch magic \"WEIR\"")) {
            try BatchCodec.decode(b)
        }
        b = Self.sample
        b[4] = 2
        do {
            _ = try BatchCodec.decode(b)
            Issue.record("version 2 decoded")
        } catch {
            #expect(error.code == .unsupportedVersion)
            #expect(error.description.contains("version 2"))
        }
        b = Self.sample
        b[5] = 1
        #expect { try BatchCodec.decode(Self.withValidChecksum(b)) } throws: { ($0 as? BatchCodecError)?.code == .malformed }
        b = Self.sample
        b[b.count - 1] ^= 0xFF
        #expect { try BatchCodec.decode(b) } throws: { ($0 as? BatchCodecError)?.code == .checksumMismatch }
        #expect { try BatchCodec.decode([]) } throws: { ($0 as? BatchCodecError)?.code == .truncated }
    }

    /// Hand-built bodies whose counts promise far more than the bytes hold.
    @Test(arguments: [
        // strings: 2^62 of them
        [1, 0x67, 1, 0x69, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
        // a string claiming 1 GiB
        [0x80, 0x80, 0x80, 0x80, 0x04],
        // 0 strings, then 2^63 readings
        [0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        // 1 string, 16 readings, 1 series with 10^9 readings
        [0, 0, 1, 1, 0x64, 16, 1, 0, 0, 0x80, 0x94, 0xEB, 0xDC, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        // an 11-byte varint
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
        // a string index past the table
        [0, 0, 1, 1, 0x64, 1, 1, 5, 0, 1, 0, 1, 0, 0],
        // block width 65
        [0, 0, 1, 1, 0x64, 3, 1, 0, 0, 3, 0, 0, 0, 65, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        // unknown value encoding 0x20
        [0, 0, 1, 1, 0x64, 1, 1, 0, 0, 1, 0, 0x20, 0, 0, 0],
        // invalid UTF-8 gateway
        [2, 0xC3, 0x28, 0, 0, 0, 0, 0],
    ] as [[UInt8]])
    func hostileCountsAreRefusedBeforeAllocating(body: [UInt8]) {
        let input = Self.withValidChecksum(BatchCodec.magic + [BatchCodec.version, 0] + body + [0, 0, 0, 0])
        #expect(throws: BatchCodecError.self) { try BatchCodec.decode(input) }
    }
}
