import Testing
import WeirCore

/// Dedup windows that grow (each growth moves a window to a new segment of the engine's
/// time pool, and the pool itself grows and moves) while other series' windows are added
/// after them; copies of a chain; rebuilds (evictions) that lay the pool out afresh.
@Suite("edge filters, growing dedup windows")
struct FilterDedupPoolTests {
    static func reading(_ device: String, _ ts: Int64) -> Reading {
        Reading(device: device, metric: "m", ts: ts, value: Double(ts % 97))
    }

    @Test func largeWindowsRememberEveryTimeAndCopiesStayApart() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", dedupWindowMs: 10_000_000)])
        chain.maxDedupEntriesPerSeries = 16_384
        let devices = ["d0", "d1", "d2"]
        let perDevice: Int64 = 6_000 // each window grows ten times, to 8,192 times
        // Interleaved, so the windows' segments alternate in the pool as they grow.
        var passed = 0
        for ts in 1...perDevice {
            for d in devices where chain.apply(Self.reading(d, ts * 10)) == .pass(Self.reading(d, ts * 10)) { passed += 1 }
        }
        #expect(passed == 3 * 6_000)

        // Every time is remembered: a replay in a scrambled order is dropped, each one.
        var copy = chain
        var dropped = 0
        var ts: Int64 = 1
        for _ in 1...perDevice {
            ts = (ts * 7_919) % perDevice + 1 // a permutation-like walk over 1...6000
            for d in devices where copy.apply(Self.reading(d, ts * 10)) == .dropped(reason: .dedup) { dropped += 1 }
        }
        #expect(dropped == 3 * 6_000)
        // Times between the recorded ones are new, in the copy...
        #expect(copy.apply(Self.reading("d1", 12_345)) == .pass(Self.reading("d1", 12_345)))
        #expect(copy.apply(Self.reading("d1", 12_345)) == .dropped(reason: .dedup))
        // ...and the original did not see what the copy recorded.
        #expect(chain.apply(Self.reading("d1", 12_345)) == .pass(Self.reading("d1", 12_345)))

        // New series after the big windows get their own segments; old ones keep theirs.
        for ts in Int64(1)...20 {
            #expect(chain.apply(Self.reading("late", ts)) == .pass(Self.reading("late", ts)))
        }
        #expect(chain.apply(Self.reading("late", 7)) == .dropped(reason: .dedup))
        #expect(chain.apply(Self.reading("d2", 59_990)) == .dropped(reason: .dedup))
        #expect(chain.apply(Self.reading("d2", 59_995)) == .pass(Self.reading("d2", 59_995)))
    }

    @Test func evictionsKeepTheWindowsOfTheDevicesThatStay() {
        // Rebuilds (evictions) lay the windows out afresh in a new pool.
        var chain = FilterChain(rules: [FilterRule(match: "*/*", dedupWindowMs: 10_000_000)])
        chain.maxDevices = 40
        for round in Int64(1)...300 {
            // "keep" every round: always among the recently seen, never evicted.
            _ = chain.apply(Self.reading("keep", round))
            _ = chain.apply(Self.reading("dev-\(round % 100)", round))
        }
        var dropped = 0
        for round in Int64(1)...300 where chain.apply(Self.reading("keep", round)) == .dropped(reason: .dedup) { dropped += 1 }
        #expect(dropped == 300)
    }
}
