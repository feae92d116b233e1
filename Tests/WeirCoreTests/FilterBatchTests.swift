import Testing
import WeirCore

/// `FilterChain.apply(_:into:)` (a payload's readings at once) against `apply(_:)` one
/// reading at a time, and the chain's value semantics.
@Suite("edge filters, batches")
struct FilterBatchTests {
    typealias Random = SplitMix64

    static let rules: [FilterRule] = [
        FilterRule(match: "*/*", range: RangeSpec(min: -1_000, max: 1_000)),
        FilterRule(match: "*/*", dedupWindowMs: 5_000),
        FilterRule(match: "*/a*", deadband: DeadbandSpec(percent: 1, heartbeatMs: 3_000)),
        FilterRule(match: "*/c", deadband: DeadbandSpec(abs: 5)),
        FilterRule(match: "d1*/*", rateLimitPerSecond: 2),
        FilterRule(match: "*/*", rateLimitPerSecond: 50),
        FilterRule(match: "*/b*", downsample: DownsampleSpec(bucketMs: 2_000, aggregate: .mean)),
        FilterRule(match: "d3/*", range: RangeSpec(max: 500)),
    ]

    /// Random payloads: mostly one device's metrics in a stable order, sometimes several
    /// devices, out-of-order and repeated times, outliers.
    static func payload(_ random: inout Random, clock: Int64) -> [Reading] {
        let metrics = ["a1", "a2", "b1", "b2", "c", "a1"]
        let device = "d\(random.below(14))"
        let count = random.below(7) // empty payloads too
        let ts = clock - Int64(random.below(4_000))
        return (0..<count).map { i in
            let value = random.below(60) == 0 ? 5_000 : Double(random.below(2_000)) / 10 - 100
            let other = random.below(8) == 0
            return Reading(device: other ? "d\(random.below(14))" : device,
                           metric: other ? metrics[random.below(metrics.count)] : metrics[i % metrics.count],
                           ts: other ? clock - Int64(random.below(6_000)) : ts, value: value)
        }
    }

    @Test func batchesGiveTheSameVerdictsAsOneAtATime() {
        var random = Random(state: 2024)
        var single = FilterChain(rules: FilterBatchTests.rules)
        var batched = FilterChain(rules: FilterBatchTests.rules)
        single.maxDevices = 8 // forces evictions
        batched.maxDevices = 8
        single.maxMetricsPerDevice = 5 // forces rebuilds ("a1" repeats, so at most 5 metrics)
        batched.maxMetricsPerDevice = 5
        var results = FilterResults()
        var clock: Int64 = 5_000_000
        var seen: [FilterVerdict: Int] = [:]
        var flushed = 0
        for step in 0..<8_000 {
            clock += Int64(random.below(40))
            let readings = FilterBatchTests.payload(&random, clock: clock)
            let expected = readings.map { single.apply($0) }
            batched.apply(readings, into: &results)
            #expect(results.outcomes.count == readings.count)
            let got = results.verdicts(for: readings)
            #expect(got == expected, "step \(step)")
            for verdict in expected { seen[FilterBatchTests.kind(verdict), default: 0] += 1 }
            if step % 13 == 0 {
                let a = single.flushDue(now: clock - 1_000)
                let b = batched.flushDue(now: clock - 1_000)
                #expect(a == b)
                flushed += a.count
            }
        }
        let a = single.flushAll()
        #expect(a == batched.flushAll())
        flushed += a.count
        // The sequence reached every kind of outcome, so the comparison meant something.
        for kind in [FilterVerdict.pass(Reading(device: "", metric: "", ts: 0, value: 0)), .held,
                     .dropped(reason: .dedup), .dropped(reason: .deadband), .dropped(reason: .rateLimit),
                     .deadLetter(reason: "")] {
            #expect(seen[kind, default: 0] > 20, "\(kind)")
        }
        #expect(flushed > 100)
    }

    /// The edge filters a hand-over (dozens of payloads, many devices) in one call: the
    /// chain looks up the next device while it judges the current one's readings, and
    /// devices are evicted and blocks moved in the middle of a batch.
    @Test func handOversOfManyPayloadsGiveTheSameVerdictsAsOneAtATime() {
        var random = Random(state: 77)
        var single = FilterChain(rules: FilterBatchTests.rules)
        var batched = FilterChain(rules: FilterBatchTests.rules)
        single.maxDevices = 8
        batched.maxDevices = 8
        single.maxMetricsPerDevice = 5
        batched.maxMetricsPerDevice = 5
        var results = FilterResults()
        var clock: Int64 = 5_000_000
        var deviceChanges = 0
        var seen: [FilterVerdict: Int] = [:]
        for step in 0..<1_500 {
            var readings: [Reading] = []
            for _ in 0..<random.below(40) {
                clock += Int64(random.below(40))
                readings += FilterBatchTests.payload(&random, clock: clock)
            }
            deviceChanges += zip(readings, readings.dropFirst()).filter { $0.device != $1.device }.count
            let expected = readings.map { single.apply($0) }
            batched.apply(readings, into: &results)
            #expect(results.verdicts(for: readings) == expected, "step \(step)")
            for verdict in expected { seen[FilterBatchTests.kind(verdict), default: 0] += 1 }
            if step % 7 == 0 { #expect(single.flushDue(now: clock - 1_000) == batched.flushDue(now: clock - 1_000)) }
        }
        #expect(single.flushAll() == batched.flushAll())
        #expect(deviceChanges > 20_000)
        for kind in [FilterVerdict.pass(Reading(device: "", metric: "", ts: 0, value: 0)), .held,
                     .dropped(reason: .dedup), .dropped(reason: .deadband), .dropped(reason: .rateLimit),
                     .deadLetter(reason: "")] {
            #expect(seen[kind, default: 0] > 100, "\(kind)")
        }
    }

    /// Verdicts with their payloads blanked, to count by kind.
    static func kind(_ verdict: FilterVerdict) -> FilterVerdict {
        switch verdict {
        case .pass: return .pass(Reading(device: "", metric: "", ts: 0, value: 0))
        case .deadLetter: return .deadLetter(reason: "")
        default: return verdict
        }
    }

    @Test func deadLetterReasonsComeInOrder() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", range: RangeSpec(min: 0, max: 10)),
                                        FilterRule(match: "*/t", range: RangeSpec(max: 5))])
        let readings = [
            Reading(device: "d", metric: "t", ts: 1, value: 11),
            Reading(device: "d", metric: "t", ts: 2, value: 3),
            Reading(device: "d", metric: "t", ts: 3, value: 7),
            Reading(device: "e", metric: "u", ts: 3, value: -1),
        ]
        var results = FilterResults()
        chain.apply(readings, into: &results)
        #expect(results.outcomes == [.deadLetter, .pass, .deadLetter, .deadLetter])
        #expect(results.deadLetterReasons == [
            "d/t: value 11.0 at 1 is above the maximum 10.0 (filter '*/*' range)",
            "d/t: value 7.0 at 3 is above the maximum 5.0 (filter '*/t' range)",
            "e/u: value -1.0 at 3 is below the minimum 0.0 (filter '*/*' range)",
        ])
        // The next batch starts afresh.
        chain.apply([Reading(device: "d", metric: "t", ts: 9, value: 1)], into: &results)
        #expect(results.outcomes == [.pass])
        #expect(results.deadLetterReasons.isEmpty)
        chain.apply([], into: &results)
        #expect(results.outcomes.isEmpty)
    }

    @Test func noRulesPassEverything() {
        var chain = FilterChain(rules: [])
        var results = FilterResults()
        let readings = (0..<5).map { Reading(device: "d", metric: "m", ts: 7, value: Double($0)) }
        chain.apply(readings, into: &results)
        #expect(results.outcomes == Array(repeating: .pass, count: 5))
    }

    /// A copy of a chain is a separate chain: what one sees, the other does not.
    @Test func copiesAreIndependent() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", dedupWindowMs: 60_000),
                                        FilterRule(match: "*/*", downsample: DownsampleSpec(bucketMs: 1_000, aggregate: .max))])
        #expect(chain.apply(Reading(device: "d", metric: "m", ts: 100, value: 1)) == .held)
        var copy = chain
        copy.maxDevices = 50
        #expect(chain.maxDevices == 100_000)
        // The same reading again: a duplicate for both (each remembers the first).
        #expect(chain.apply(Reading(device: "d", metric: "m", ts: 100, value: 1)) == .dropped(reason: .dedup))
        #expect(copy.apply(Reading(device: "d", metric: "m", ts: 100, value: 1)) == .dropped(reason: .dedup))
        // A new time only the copy sees.
        #expect(copy.apply(Reading(device: "d", metric: "m", ts: 200, value: 9)) == .held)
        #expect(chain.apply(Reading(device: "d", metric: "m", ts: 200, value: 4)) == .held)
        #expect(copy.flushAll() == [Reading(device: "d", metric: "m", ts: 0, value: 9)])
        #expect(chain.flushAll() == [Reading(device: "d", metric: "m", ts: 0, value: 4)])
    }
}
