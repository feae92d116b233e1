import Testing
import WeirCore

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("250ms", Int64(250)), ("5s", 5_000), ("10m", 600_000), ("1h", 3_600_000), ("7d", 604_800_000),
        ("1h30m", 5_400_000), ("1.5s", 1_500), (" 2s ", 2_000), ("1500us", 1), ("0s", 0),
    ])
    func parses(text: String, ms: Int64) throws {
        #expect(try DurationText.parseMilliseconds(text) == ms)
        #expect(try DurationText.parse(text) == .milliseconds(ms))
    }

    @Test(arguments: ["", "5", "s", "5x", "1..5s", "-5s", "99999999999999999999d", "5 s"])
    func rejectsWithAMessageNamingTheText(text: String) {
        #expect(throws: WeirError.self) { try DurationText.parseMilliseconds(text) }
        do {
            _ = try DurationText.parseMilliseconds(text)
        } catch {
            #expect(error.message.contains("is not a duration"))
        }
    }

    @Test func formatRoundTrips() throws {
        for ms: Int64 in [0, 1, 250, 1_000, 90_000, 5_400_000, 604_800_000, 604_800_001] {
            #expect(try DurationText.parseMilliseconds(DurationText.formatMilliseconds(ms)) == ms)
        }
        #expect(DurationText.format(.seconds(90)) == "1m30s")
    }
}

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("1GiB", Int64(1 << 30)), ("512MiB", 512 << 20), ("64KiB", 65_536), ("16MB", 16_000_000),
        ("1000", 1_000), ("10B", 10), ("1.5KiB", 1_536),
    ])
    func parses(text: String, bytes: Int64) throws {
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test(arguments: ["", "GiB", "1XB", "-1MiB", "1e30GiB"])
    func rejects(text: String) {
        #expect(throws: WeirError.self) { try ByteSize.parse(text) }
    }
}

@Suite struct WindowTests {
    @Test func windowsAlignToTheEpochAlsoBefore1970() {
        #expect(WindowMath.start(of: 0, size: 60_000) == 0)
        #expect(WindowMath.start(of: 59_999, size: 60_000) == 0)
        #expect(WindowMath.start(of: 60_000, size: 60_000) == 60_000)
        #expect(WindowMath.start(of: -1, size: 60_000) == -60_000)
        #expect(WindowMath.start(of: -60_000, size: 60_000) == -60_000)
        #expect(WindowMath.start(of: 1_732_540_000_123, size: 10_000) == 1_732_540_000_000)
    }

    @Test func aggregateKeepsFirstAndLastByEventTimeWhateverTheOrder() {
        var agg = WindowAggregate(ts: 5_000, value: 3)
        agg.add(ts: 1_000, value: 7)
        agg.add(ts: 9_000, value: -2)
        agg.add(ts: 4_000, value: 10)
        #expect(agg.count == 4)
        #expect(agg.sum == 18)
        #expect(agg.min == -2)
        #expect(agg.max == 10)
        #expect(agg.mean == 4.5)
        #expect(agg.firstTs == 1_000 && agg.firstValue == 7)
        #expect(agg.lastTs == 9_000 && agg.lastValue == -2)

        var left = WindowAggregate(ts: 5_000, value: 3)
        left.add(ts: 1_000, value: 7)
        var right = WindowAggregate(ts: 9_000, value: -2)
        right.add(ts: 4_000, value: 10)
        left.merge(right)
        #expect(left == agg)
    }
}
