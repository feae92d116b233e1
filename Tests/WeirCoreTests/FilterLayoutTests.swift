import Testing
import WeirCore

/// The filter state's memory layout: each device's state is one block that moves when
/// the device gains a series and other devices' blocks come after it, and the space
/// moved blocks leave is reclaimed by a rebuild. None of that may change a verdict: a
/// device's verdicts depend only on its own readings, so interleaving many devices (each
/// gaining metrics payload by payload, so blocks move all the time) must judge every
/// reading as feeding the devices one after the other does (where no block ever moves).
@Suite("edge filters, state layout")
struct FilterLayoutTests {
    static let rules: [FilterRule] = [
        FilterRule(match: "*/*", range: RangeSpec(min: -400, max: 400)),
        FilterRule(match: "*/*", dedupWindowMs: 4_000),
        FilterRule(match: "*/m1*", deadband: DeadbandSpec(abs: 2, heartbeatMs: 5_000)),
        FilterRule(match: "*/m2*", deadband: DeadbandSpec(percent: 5)),
        FilterRule(match: "*/*", rateLimitPerSecond: 30),
        FilterRule(match: "long-*/*", rateLimitPerSecond: 2),
        FilterRule(match: "*/m3*", downsample: DownsampleSpec(bucketMs: 3_000, aggregate: .max)),
    ]

    /// Device `d`'s `p`-th payload: its first `p % 12 + 1` metrics (so it gains one
    /// metric per payload, then starts over), at times that repeat and go back now and
    /// then. Some devices have long names (stored apart from the string's bits), and a
    /// tighter rate limit.
    static func payload(device d: Int, number p: Int) -> [Reading] {
        let name = d % 7 == 0 ? "long-device-name-number-\(d)" : "d\(d)"
        // Every 7th payload repeats the times of two before; every 5th goes back to an
        // earlier downsample bucket.
        let ts = 1_732_540_000_000 + Int64(p) * 700 - (p % 7 == 0 ? 1_400 : p % 5 == 0 ? 2_101 : 0)
        return (0...(p % 12)).map { m in
            let value = Double((d * 31 + p * 17 + m * 7) % 900) - 450 // some out of range
            return Reading(device: name, metric: m % 4 == 0 ? "m\(m)" : "m\(m % 4)-\(m)", ts: ts, value: value)
        }
    }

    static func key(_ r: Reading) -> String { "\(r.device)/\(r.metric)@\(r.ts)=\(r.value)" }

    @Test func interleavedDevicesAreJudgedAsDevicesOneAfterAnother() {
        let devices = 300, payloads = 40
        var interleaved = FilterChain(rules: Self.rules)
        var sequential = FilterChain(rules: Self.rules)
        var results = FilterResults()
        var verdictsInterleaved: [String: [FilterVerdict]] = [:]
        var verdictsSequential: [String: [FilterVerdict]] = [:]
        // Round robin: each payload adds a series to a block that is no longer the last.
        for p in 0..<payloads {
            for d in 0..<devices {
                let batch = Self.payload(device: d, number: p)
                interleaved.apply(batch, into: &results)
                for (r, v) in zip(batch, results.verdicts(for: batch)) { verdictsInterleaved[Self.key(r), default: []].append(v) }
            }
        }
        for d in 0..<devices {
            for p in 0..<payloads {
                for r in Self.payload(device: d, number: p) {
                    verdictsSequential[Self.key(r), default: []].append(sequential.apply(r))
                }
            }
        }
        #expect(verdictsInterleaved.count == verdictsSequential.count)
        #expect(verdictsInterleaved == verdictsSequential)
        // Every kind of verdict happened, so every stage was exercised.
        let all = verdictsInterleaved.values.joined()
        let passed = all.filter { if case .pass = $0 { true } else { false } }.count
        let held = all.filter { $0 == .held }.count
        let deadLetters = all.filter { if case .deadLetter = $0 { true } else { false } }.count
        let reasons = Set(all.compactMap { if case .dropped(let reason) = $0 { reason } else { nil } })
        #expect(passed > 10_000 && held > 1_000 && deadLetters > 1_000)
        #expect(reasons == [.dedup, .deadband, .rateLimit, .downsample])
        // The buckets still open are the same, whatever the order they were filled in.
        let openInterleaved = interleaved.flushAll().map(Self.key).sorted()
        let openSequential = sequential.flushAll().map(Self.key).sorted()
        #expect(openInterleaved.count > devices * 3) // each device has three m3 series
        #expect(openInterleaved == openSequential)
    }

    @Test func aDeviceThatOutgrowsItsMetricCapStartsAfreshWithoutDisturbingOthers() {
        var capped = FilterChain(rules: Self.rules)
        capped.maxMetricsPerDevice = 8
        var uncapped = FilterChain(rules: Self.rules)
        let ts: Int64 = 1_732_540_000_000
        func feed(_ chain: inout FilterChain) {
            let first = Reading(device: "other", metric: "m1", ts: ts, value: 10)
            #expect(chain.apply(first) == .pass(first))
            // "wild" invents metric names, a second apart: past 8 its series start over.
            for i in 0..<50 {
                let r = Reading(device: "wild", metric: "m2-\(i)", ts: ts + Int64(i) * 1_000, value: 1)
                #expect(chain.apply(r) == .pass(r))
            }
            // "other" kept its deadband state through "wild"'s resets.
            #expect(chain.apply(Reading(device: "other", metric: "m1", ts: ts + 100, value: 11)) == .dropped(reason: .deadband))
        }
        feed(&capped)
        feed(&uncapped)
        // "wild"'s first series was forgotten under the cap (a repeat passes dedup), not without it.
        let repeated = Reading(device: "wild", metric: "m2-0", ts: ts, value: 1)
        #expect(capped.apply(repeated) == .pass(repeated))
        #expect(uncapped.apply(repeated) == .dropped(reason: .dedup))
    }
}
