import Testing
@testable import WeirCloud

/// The token bucket behind `max_readings_per_second`, on a clock the test moves.
@Suite struct IngestRateLimiterTests {
    @Test("a full bucket admits a second's worth, a larger batch takes it into debt, time pays the debt back")
    func bucket() {
        let limiter = IngestRateLimiter()
        let t0 = ContinuousClock.now
        #expect(limiter.admit(gateway: "g", readings: 60, perSecond: 100, now: t0) == .admitted)
        #expect(limiter.admit(gateway: "g", readings: 40, perSecond: 100, now: t0) == .admitted)
        // Empty: 50 more need half a second.
        #expect(limiter.admit(gateway: "g", readings: 50, perSecond: 100, now: t0) == .refused(retryAfter: .milliseconds(500)))
        #expect(limiter.admit(gateway: "g", readings: 50, perSecond: 100, now: t0 + .milliseconds(500)) == .admitted)
        // A batch of 300 waits for a full bucket (100), then leaves 200 of debt: 3 s to the next 100.
        let t1 = t0 + .seconds(10)
        #expect(limiter.admit(gateway: "g", readings: 300, perSecond: 100, now: t1) == .admitted)
        #expect(limiter.admit(gateway: "g", readings: 100, perSecond: 100, now: t1) == .refused(retryAfter: .seconds(3)))
        #expect(limiter.admit(gateway: "g", readings: 100, perSecond: 100, now: t1 + .seconds(3)) == .admitted)
        // Buckets are per gateway.
        #expect(limiter.admit(gateway: "other", readings: 100, perSecond: 100, now: t1) == .admitted)
    }
}
