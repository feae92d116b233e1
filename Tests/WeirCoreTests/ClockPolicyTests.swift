import Testing
import WeirCore

@Suite("device clocks")
struct ClockPolicyTests {
    let now: Int64 = 1_732_540_000_000 // 2024-11-25T13:06:40Z

    func reading(_ ts: Int64) -> Reading { Reading(device: "d1", metric: "temp", ts: ts, value: 21.5) }

    @Test func plausibleTimesPass() {
        let policy = ClockPolicy()
        for ts in [now, now - 86_400_000 * 30, now + 300_000, ClockPolicy.earliestValidTs] {
            #expect(policy.check(reading(ts), receivedAt: now) == .ok(reading(ts)))
        }
    }

    @Test func futureBeyondSkewIsRejected() {
        let policy = ClockPolicy(maxSkewMs: 300_000)
        let verdict = policy.check(reading(now + 300_001), receivedAt: now)
        #expect(verdict == .rejected(reason: "d1/temp: timestamp 1732540300001 (2024-11-25T13:11:40.001Z) is 300001 ms ahead of the receive time (max_clock_skew 300000 ms)"))
    }

    @Test func before2000IsRejected() {
        let policy = ClockPolicy()
        #expect(policy.check(reading(12_345), receivedAt: now) == .rejected(reason: "d1/temp: timestamp 12345 (1970-01-01T00:00:12.345Z) is before 2000-01-01 (device clock reset?)"))
        #expect(policy.check(reading(ClockPolicy.earliestValidTs - 1), receivedAt: now) != .ok(reading(ClockPolicy.earliestValidTs - 1)))
        #expect(policy.check(reading(-5), receivedAt: now) != .ok(reading(-5)))
    }

    @Test func receiveTimeReplacesAndKeepsTheOriginalInTheNote() {
        let policy = ClockPolicy(maxSkewMs: 1_000, onBad: .receiveTime)
        let verdict = policy.check(reading(5_000), receivedAt: now)
        #expect(verdict == .replaced(reading(now), note: "d1/temp: timestamp 5000 (1970-01-01T00:00:05.000Z) is before 2000-01-01 (device clock reset?); replaced by the receive time 1732540000000 (2024-11-25T13:06:40.000Z)"))
        guard case .replaced(let fixed, _) = policy.check(reading(now + 1_001), receivedAt: now) else {
            Issue.record("a time 1001 ms ahead with a 1000 ms skew must be replaced")
            return
        }
        #expect(fixed.ts == now)
        #expect(fixed.value == 21.5)
    }

    @Test func extremeValuesDoNotTrap() {
        let policy = ClockPolicy(maxSkewMs: Int64.max)
        #expect(policy.check(reading(Int64.max), receivedAt: now) == .ok(reading(Int64.max)))
        #expect(ClockPolicy().check(reading(Int64.min), receivedAt: now) != .ok(reading(Int64.min)))
        #expect(ClockPolicy().check(reading(Int64.max), receivedAt: Int64.max) == .ok(reading(Int64.max)))
    }

    @Test func policyNamesParseFromConfig() {
        #expect(ClockPolicy.OnBadTimestamp(rawValue: "receive-time") == .receiveTime)
        #expect(ClockPolicy.OnBadTimestamp(rawValue: "reject") == .reject)
        #expect(ClockPolicy.OnBadTimestamp(rawValue: "drop") == nil)
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"),
        (1_732_540_000_123, "2024-11-25T13:06:40.123Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
    ])
    func rfc3339RoundTrip(ms: Int64, text: String) {
        #expect(RFC3339.format(ms) == text)
        #expect(RFC3339.parse(text) == ms)
    }

    @Test(arguments: ["2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z",
                      "2024-01-01T00:00:00", "2024-01-01", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00+25:00", "x"])
    func rfc3339Rejects(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }
}
