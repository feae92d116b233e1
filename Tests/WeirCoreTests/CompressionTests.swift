import Testing
import WeirCompression

@Suite struct CompressionTests {
    let text: [UInt8] = Array(String(repeating: "{\"device\":\"d1\",\"metric\":\"temp\",\"ts\":1732540000123,\"value\":21.5}\n", count: 500).utf8)

    @Test func zstdRoundTripsAndShrinksRepetitiveText() throws {
        let packed = try Zstd.compress(text)
        #expect(packed.count < text.count / 10)
        #expect(try Zstd.decompress(packed, maxSize: 1 << 20) == text)
    }

    @Test func gzipRoundTripsAndShrinksRepetitiveText() throws {
        let packed = try Gzip.compress(text)
        #expect(packed.count < text.count / 10)
        #expect(packed.prefix(2) == [0x1F, 0x8B])
        #expect(try Gzip.decompress(packed, maxSize: 1 << 20) == text)
    }

    @Test func outputOverTheLimitIsAnErrorNotAnAllocation() throws {
        let bomb = try Zstd.compress([UInt8](repeating: 0, count: 4 << 20))
        #expect(bomb.count < 1_000)
        #expect(throws: CompressionError.self) { try Zstd.decompress(bomb, maxSize: 1 << 20) }
        let gzipBomb = try Gzip.compress([UInt8](repeating: 0, count: 4 << 20))
        #expect(throws: CompressionError.self) { try Gzip.decompress(gzipBomb, maxSize: 1 << 20) }
    }

    @Test func everyTruncationAndGarbageIsAnError() throws {
        let z = try Zstd.compress(text)
        let g = try Gzip.compress(text)
        for cut in 0..<z.count { #expect(throws: CompressionError.self) { try Zstd.decompress(z[0..<cut], maxSize: 1 << 20) } }
        for cut in 0..<g.count { #expect(throws: CompressionError.self) { try Gzip.decompress(g[0..<cut], maxSize: 1 << 20) } }
        #expect(throws: CompressionError.self) { try Zstd.decompress(Array("not zstd".utf8), maxSize: 1 << 20) }
        #expect(throws: CompressionError.self) { try Gzip.decompress(Array("not gzip".utf8), maxSize: 1 << 20) }
    }

    /// The cloud answers 413 for `.tooLarge` and 400 for the rest, so the code must say which.
    @Test func theCodeSaysWhichFailureItIs() throws {
        let bomb = try Zstd.compress([UInt8](repeating: 0, count: 4 << 20))
        func code(_ body: () throws -> [UInt8]) -> CompressionError.Code? {
            do { _ = try body(); return nil } catch { return (error as? CompressionError)?.code }
        }
        #expect(code { try Zstd.decompress(bomb, maxSize: 1 << 20) } == .tooLarge)
        #expect(code { try Gzip.decompress(try Gzip.compress([UInt8](repeating: 0, count: 4 << 20)), maxSize: 1 << 20) } == .tooLarge)
        let z = try Zstd.compress(text)
        #expect(code { try Zstd.decompress(z[0..<(z.count - 1)], maxSize: 1 << 20) } == .truncated)
        #expect(code { try Zstd.decompress(Array("not zstd".utf8), maxSize: 1 << 20) } == .damaged)
        do {
            _ = try WireBatch.unwrap(Array("{}".utf8), maxSize: 1 << 20)
            Issue.record("a JSON body unwrapped as a wire batch")
        } catch let error as CompressionError {
            #expect(error.code == .wrongFormat)
        }
    }
}
