import Testing
import WeirCore

@Suite("edge filters")
struct FilterChainTests {
    func r(_ metric: String, _ ts: Int64, _ value: Double, device: String = "d1") -> Reading {
        Reading(device: device, metric: metric, ts: ts, value: value)
    }

    /// Applies readings and returns the verdicts.
    func run(_ chain: inout FilterChain, _ readings: [Reading]) -> [FilterVerdict] {
        readings.map { chain.apply($0) }
    }

    @Test func rangeSendsOutliersToDeadLetters() {
        var chain = FilterChain(rules: [FilterRule(match: "*/temp", range: RangeSpec(min: -50, max: 150))])
        let verdicts = run(&chain, [r("temp", 1, 20), r("temp", 2, 200), r("temp", 3, -60), r("hum", 4, 200), r("temp", 5, 150)])
        #expect(verdicts == [
            .pass(r("temp", 1, 20)),
            .deadLetter(reason: "d1/temp: value 200.0 at 2 is above the maximum 150.0 (filter '*/temp' range)"),
            .deadLetter(reason: "d1/temp: value -60.0 at 3 is below the minimum -50.0 (filter '*/temp' range)"),
            .pass(r("hum", 4, 200)),
            .pass(r("temp", 5, 150)),
        ])
        var maxOnly = FilterChain(rules: [FilterRule(match: "*/*", range: RangeSpec(max: 10))])
        #expect(maxOnly.apply(r("x", 1, -1e300)) == .pass(r("x", 1, -1e300)))
        #expect(maxOnly.apply(r("x", 2, 10.5)) != .pass(r("x", 2, 10.5)))
    }

    @Test func dedupDropsRepeatsWithinTheWindow() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", dedupWindowMs: 60_000)])
        let verdicts = run(&chain, [
            r("temp", 1_000, 1), r("temp", 1_000, 1), r("temp", 2_000, 2), r("temp", 1_000, 9),
            r("hum", 1_000, 1), r("temp", 1_000, 1, device: "d2"),
            r("temp", 70_000, 3), r("temp", 2_000, 2), r("temp", 70_000, 3), r("temp", 30_000, 4), r("temp", 30_000, 4),
        ])
        #expect(verdicts.map(\.kind) == [
            "pass", "dedup", "pass", "dedup",
            "pass", "pass",                     // other series, other device
            "pass", "pass", "dedup", "pass", "dedup", // 2_000 fell out of the window of 70_000; 30_000 did not
        ])
    }

    @Test func deadbandHoldsSmallChangesAndHeartbeatForcesOneThrough() {
        var chain = FilterChain(rules: [FilterRule(match: "*/temp", deadband: DeadbandSpec(abs: 0.5, heartbeatMs: 60_000))])
        let values: [(Int64, Double)] = [
            (0, 20.0), (1_000, 20.3), (2_000, 20.4), (3_000, 20.6), (4_000, 20.2), (5_000, 20.1),
            (63_000, 20.3), (64_000, 20.3), (123_000, 20.3), (124_000, 19.0),
        ]
        let verdicts = run(&chain, values.map { r("temp", $0.0, $0.1) })
        #expect(verdicts.map(\.kind) == [
            "pass",                 // first reading of the series
            "deadband", "deadband", // within 0.5 of 20.0
            "pass",                 // 20.6 moved 0.6
            "deadband", "deadband", // 20.2 and 20.1: 0.4 and exactly 0.5 (not more) from 20.6
            "pass",                 // 63 s: 60 s since the last passed reading (3 s), the heartbeat forces it
            "deadband",             // 64 s: same value, heartbeat not due
            "pass",                 // 123 s: heartbeat again (60 s after 63 s)
            "pass",                 // 19.0 moved 1.3
        ])
    }

    @Test func deadbandPercent() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", deadband: DeadbandSpec(percent: 10))])
        let verdicts = run(&chain, [r("p", 1, 100), r("p", 2, 105), r("p", 3, 110), r("p", 4, 111), r("p", 5, 0), r("p", 6, 0), r("p", 7, 0.001)])
        #expect(verdicts.map(\.kind) == ["pass", "deadband", "deadband", "pass", "pass", "deadband", "pass"])
    }

    @Test func rateLimitCapsEachDevice() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", rateLimitPerSecond: 2)])
        // Ten metrics at the same instant: two pass (a burst of one second's worth).
        let burst = run(&chain, (0..<10).map { r("m\($0)", 10_000, 1) })
        #expect(burst.map(\.kind) == ["pass", "pass"] + Array(repeating: "rate_limit", count: 8))
        // Another device has its own budget.
        #expect(chain.apply(r("m0", 10_000, 1, device: "d2")).kind == "pass")
        // Half a second of event time refills one token.
        #expect(run(&chain, [r("a", 10_500, 1), r("b", 10_500, 1)]).map(\.kind) == ["pass", "rate_limit"])
        // A long pause refills only up to the burst.
        #expect(run(&chain, (0..<5).map { r("c\($0)", 100_000, 1) }).map(\.kind) == ["pass", "pass", "rate_limit", "rate_limit", "rate_limit"])
        // A steady 10/s stream of one device is cut to 2/s.
        var steady = FilterChain(rules: [FilterRule(match: "*/*", rateLimitPerSecond: 2)])
        let passed = (0..<100).map { steady.apply(r("x", Int64($0) * 100, 1)) }.filter { $0.kind == "pass" }.count
        #expect(passed == 21) // a burst of 2, then 2 per second for 9.9 s: 2 + 19.8 tokens
    }

    @Test(arguments: [
        (DownsampleSpec.Aggregate.mean, [2.0, 6.0]),
        (.min, [1.0, 5.0]),
        (.max, [3.0, 7.0]),
        (.last, [2.0, 7.0]),
    ])
    func downsampleBuckets(aggregate: DownsampleSpec.Aggregate, expected: [Double]) {
        var chain = FilterChain(rules: [FilterRule(match: "*/temp", downsample: DownsampleSpec(bucketMs: 10_000, aggregate: aggregate))])
        // Bucket [0, 10 s): 1, 3, 2 (the latest by event time is 2, arriving in the middle);
        // bucket [10 s, 20 s): 5, 7.
        let verdicts = run(&chain, [r("temp", 1_000, 1), r("temp", 9_000, 2), r("temp", 5_000, 3), r("temp", 10_000, 5), r("temp", 19_999, 7)])
        #expect(verdicts.allSatisfy { $0 == .held })
        // The first bucket is complete (a later one started); the second is not yet.
        #expect(chain.flushDue(now: 15_000) == [r("temp", 0, expected[0])])
        #expect(chain.flushDue(now: 19_999) == [])
        #expect(chain.flushDue(now: 20_000) == [r("temp", 10_000, expected[1])])
        // A reading for an emitted bucket is too late.
        #expect(chain.apply(r("temp", 12_000, 100)) == .dropped(reason: .downsample))
        #expect(chain.flushAll() == [])
    }

    @Test func flushAllEmitsOpenBucketsAtShutdown() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", downsample: DownsampleSpec(bucketMs: 60_000, aggregate: .mean))])
        _ = run(&chain, [r("a", 1, 1), r("a", 2, 3), r("b", 1, 10, device: "d2")])
        let out = chain.flushAll().sorted { $0.device < $1.device }
        #expect(out == [r("a", 0, 2), r("b", 0, 10, device: "d2")])
        #expect(chain.flushAll() == [])
        // Other series pass untouched by a rule that does not match them.
        var temp = FilterChain(rules: [FilterRule(match: "*/temp", downsample: DownsampleSpec(bucketMs: 60_000))])
        #expect(temp.apply(r("hum", 1, 1)) == .pass(r("hum", 1, 1)))
    }

    @Test func everyMatchingRuleAppliesInOrder() {
        var chain = FilterChain(rules: [
            FilterRule(match: "*/*", range: RangeSpec(min: 0)),
            FilterRule(match: "sensor-?/temp", deadband: DeadbandSpec(abs: 1)),
            FilterRule(match: "temp", dedupWindowMs: 1_000),
        ])
        let verdicts = run(&chain, [
            r("temp", 1, 5, device: "sensor-1"), r("temp", 2, 5.5, device: "sensor-1"), r("temp", 3, -1, device: "sensor-1"),
            r("temp", 1, 5, device: "sensor-10"), r("temp", 1, 5, device: "sensor-10"), r("hum", 1, -1, device: "x"),
        ])
        #expect(verdicts.map(\.kind) == ["pass", "deadband", "dead_letter", "pass", "dedup", "dead_letter"])
    }

    @Test(arguments: [
        ("*/temp", "a/b", "temp", true), ("temp", "anything", "temp", true), ("temp", "d", "temp2", false),
        ("site/*/temp", "site/a/b", "temp", true), ("site/*", "other", "x", false), ("d?/*", "d1", "x", true),
        ("d?/*", "d12", "x", false), ("*", "d", "m", true), ("*/*", "d", "m", true), ("a*b*c/*", "aXbYc", "m", true),
    ])
    func globs(pattern: String, device: String, metric: String, matches: Bool) throws {
        #expect(try NameGlob(pattern).matches(device: device, metric: metric) == matches)
    }

    @Test func ruleValidationNamesTheProblem() {
        func problem(_ rule: FilterRule) -> String? {
            do { try rule.validate(); return nil } catch { return error.message }
        }
        #expect(problem(FilterRule(match: "*/temp", range: RangeSpec(min: -50, max: 150), dedupWindowMs: 1000,
                                   deadband: DeadbandSpec(abs: 0.2, heartbeatMs: 60_000), rateLimitPerSecond: 10,
                                   downsample: DownsampleSpec(bucketMs: 10_000, aggregate: .max))) == nil)
        #expect(problem(FilterRule(match: "")) == "filter '': match pattern is empty (write e.g. \"*/temp\")")
        #expect(problem(FilterRule(match: "a b")) == "filter 'a b': match pattern 'a b' contains ' ' (names are [A-Za-z0-9_.:/-], globs add * and ?)")
        #expect(problem(FilterRule(match: "*", range: RangeSpec(min: 5, max: 1))) == "filter '*': range.min 5.0 is above range.max 1.0")
        #expect(problem(FilterRule(match: "*", deadband: DeadbandSpec())) == "filter '*': deadband needs abs or percent")
        #expect(problem(FilterRule(match: "*", deadband: DeadbandSpec(abs: 1, percent: 2))) == "filter '*': deadband takes abs or percent, not both")
        #expect(problem(FilterRule(match: "*", rateLimitPerSecond: 0)) == "filter '*': rate_limit must be a number of readings per second above 0")
        #expect(problem(FilterRule(match: "*", downsample: DownsampleSpec(bucketMs: 0))) == "filter '*': downsample bucket must be between 1ms and 365d")
        #expect(problem(FilterRule(match: "*", dedupWindowMs: -1)) == "filter '*': dedup window must be between 1ms and 365d")
        #expect(DownsampleSpec.Aggregate(rawValue: "last") == .last)
        #expect(FilterReason(rawValue: "rate_limit") == .rateLimit)
    }

    @Test func stateStaysBoundedAndHeldReadingsSurviveEviction() {
        var chain = FilterChain(rules: [FilterRule(match: "*/*", downsample: DownsampleSpec(bucketMs: 60_000, aggregate: .last))])
        chain.maxDevices = 100
        var emitted: [Reading] = []
        for d in 0..<5_000 {
            #expect(chain.apply(r("m", 1_000, Double(d), device: "dev-\(d)")) == .held)
            if d % 1_000 == 999 { emitted += chain.flushDue(now: 0) }
        }
        emitted += chain.flushAll()
        // Every device's bucket came out exactly once, evicted or not.
        #expect(emitted.count == 5_000)
        #expect(Set(emitted.map(\.device)).count == 5_000)

        // A dedup window remembers at most maxDedupEntriesPerSeries times.
        var dedup = FilterChain(rules: [FilterRule(match: "*/*", dedupWindowMs: FilterRule.maxSpanMs)])
        dedup.maxDedupEntriesPerSeries = 100
        for ts in 0..<1_000 { _ = dedup.apply(r("m", Int64(ts), 1)) }
        #expect(dedup.apply(r("m", 999, 1)) == .dropped(reason: .dedup))
        #expect(dedup.apply(r("m", 0, 1)) == .pass(r("m", 0, 1))) // forgotten: past the cap
    }

    @Test func extremeTimesAndValuesDoNotTrap() {
        var chain = FilterChain(rules: [
            FilterRule(match: "*/*", range: RangeSpec(min: -1e308, max: 1e308), dedupWindowMs: FilterRule.maxSpanMs,
                       deadband: DeadbandSpec(abs: 1, heartbeatMs: FilterRule.maxSpanMs), rateLimitPerSecond: 1e9,
                       downsample: DownsampleSpec(bucketMs: FilterRule.maxSpanMs, aggregate: .max)),
        ])
        var held = 0
        for ts in [Int64.min, Int64.min + 1, -1, 0, 1, Int64.max - 1, Int64.max, Int64.min, Int64.max] {
            for value in [-1e308, 0, 1e308] {
                if chain.apply(Reading(device: "d", metric: "m", ts: ts, value: value)) == .held { held += 1 }
            }
        }
        _ = chain.flushDue(now: Int64.max)
        _ = chain.flushDue(now: Int64.min)
        let out = chain.flushAll()
        #expect(held > 0)
        #expect(out.allSatisfy { $0.value.isFinite })
        // A mean of huge values does not overflow to infinity.
        var mean = FilterChain(rules: [FilterRule(match: "*/*", downsample: DownsampleSpec(bucketMs: 1_000, aggregate: .mean))])
        _ = mean.apply(Reading(device: "d", metric: "m", ts: 1, value: 1.5e308))
        _ = mean.apply(Reading(device: "d", metric: "m", ts: 2, value: 1.5e308))
        _ = mean.apply(Reading(device: "d", metric: "m", ts: 3, value: 0))
        #expect(mean.flushAll() == [Reading(device: "d", metric: "m", ts: 0, value: 1e308)])
    }

    @Test func noRulesPassesEverything() {
        var chain = FilterChain(rules: [])
        #expect(chain.apply(r("m", 1, 1)) == .pass(r("m", 1, 1)))
        #expect(chain.flushDue(now: .max) == [])
    }
}

extension FilterVerdict {
    /// A short label for comparing sequences of verdicts.
    var kind: String {
        switch self {
        case .pass: return "pass"
        case .held: return "held"
        case .dropped(let reason): return reason.rawValue
        case .deadLetter: return "dead_letter"
        }
    }
}

@Suite("edge filters, randomized")
struct FilterChainPropertyTests {
    typealias Random = SplitMix64

    /// Out-of-order, duplicated readings of many series through every kind of stage, with
    /// flushes at random moments and evictions forced by a small device cap: every held
    /// reading comes out in exactly one aggregate per bucket, with the right mean, and
    /// nothing else is invented.
    @Test func heldReadingsComeOutOnceWithTheRightMean() {
        var random = Random(state: 7)
        var chain = FilterChain(rules: [
            FilterRule(match: "*/*", range: RangeSpec(min: -1_000, max: 1_000)),
            FilterRule(match: "*/*", dedupWindowMs: 5_000),
            FilterRule(match: "*/a*", deadband: DeadbandSpec(percent: 1, heartbeatMs: 3_000)),
            FilterRule(match: "*/*", rateLimitPerSecond: 50),
            FilterRule(match: "*/b*", downsample: DownsampleSpec(bucketMs: 2_000, aggregate: .mean)),
        ])
        chain.maxDevices = 8 // forces evictions
        var held: [SeriesKey: [Int64: [Double]]] = [:]
        var emitted: [Reading] = []
        var passed = 0, dropped = 0, deadLetters = 0
        var clock: Int64 = 1_000_000
        for step in 0..<20_000 {
            clock += Int64(random.below(20))
            let device = "d\(random.below(12))"
            let metric = ["a1", "a2", "b1", "b2", "c"][random.below(5)]
            let ts = clock - Int64(random.below(4_000))              // up to 4 s out of order
            let value = random.below(50) == 0 ? 5_000 : Double(random.below(2_000)) / 10 - 100
            let reading = Reading(device: device, metric: metric, ts: ts, value: value)
            switch chain.apply(reading) {
            case .pass(let r): #expect(r == reading); passed += 1
            case .held: held[reading.series, default: [:]][WindowMath.start(of: ts, size: 2_000), default: []].append(value)
            case .dropped: dropped += 1
            case .deadLetter: deadLetters += 1; #expect(value == 5_000)
            }
            if step % 97 == 0 { emitted += chain.flushDue(now: clock - 1_000) }
        }
        emitted += chain.flushAll()
        #expect(passed > 0 && dropped > 0 && deadLetters > 0)
        var seen: [SeriesKey: Set<Int64>] = [:]
        for r in emitted {
            #expect(r.metric.hasPrefix("b"))
            #expect(seen[r.series, default: []].insert(r.ts).inserted, "bucket \(r.ts) of \(r.series) emitted twice")
            guard let values = held[r.series]?[r.ts] else {
                Issue.record("aggregate \(r) for a bucket that held nothing")
                continue
            }
            let mean = values.reduce(0, +) / Double(values.count)
            #expect(abs(r.value - mean) < 1e-9)
        }
        let buckets = held.values.reduce(0) { $0 + $1.count }
        #expect(emitted.count == buckets)
    }
}

extension FilterChainPropertyTests {
    /// The dedup window against a plain set: out-of-order times, repeats, growth and
    /// wrap-around of its ring, many series at once, state rebuilt under it.
    @Test func dedupMatchesAReferenceSet() {
        var random = Random(state: 99)
        let window: Int64 = 3_000
        var chain = FilterChain(rules: [FilterRule(match: "*/*", dedupWindowMs: window)])
        // Another device inventing metric names keeps forcing rebuilds of the state
        // (which move every window's times): "d" must not notice.
        chain.maxMetricsPerDevice = 50
        var invented = 0
        var seen: [String: Set<Int64>] = [:]
        var newest: [String: Int64] = [:]
        var clock: Int64 = 0
        var dropped = 0
        for _ in 0..<50_000 {
            clock += Int64(random.below(30))
            let metric = "m\(random.below(20))"
            let ts = (clock - Int64(random.below(random.below(10) == 0 ? 6_000 : 2_000))) / 100 * 100
            let reading = Reading(device: "d", metric: metric, ts: ts, value: 1)
            let expectDrop = ts >= (newest[metric] ?? -1_000_000_000) - window && seen[metric, default: []].contains(ts)
            let verdict = chain.apply(reading)
            #expect((verdict == .dropped(reason: .dedup)) == expectDrop, "ts \(ts) of \(metric)")
            if verdict == .dropped(reason: .dedup) { dropped += 1 }
            if ts >= (newest[metric] ?? -1_000_000_000) - window { seen[metric, default: []].insert(ts) }
            newest[metric] = max(newest[metric] ?? .min, ts)
            if random.below(4) == 0 {
                invented += 1
                _ = chain.apply(Reading(device: "x", metric: "n\(invented)", ts: clock, value: 1))
            }
        }
        #expect(dropped > 1_000)
    }
}
