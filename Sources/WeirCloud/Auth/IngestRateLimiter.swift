import Synchronization

/// Per-gateway token buckets for `max_readings_per_second`: a bucket holds at most one
/// second of readings and refills continuously. A batch may take the bucket into debt
/// (a batch larger than a second's worth must still pass some time), but only when the
/// bucket holds at least as much as the batch needs up to a full bucket; otherwise it is
/// refused with the seconds until it would pass. Checked before a batch waits for the
/// store, so a gateway over its limit never holds up another's commits.
///
/// ```swift
/// let limiter = IngestRateLimiter()
/// switch limiter.admit(gateway: "gw-1", readings: 5_000, perSecond: 1_000, now: .now) {
/// case .admitted: ...
/// case .refused(let retryAfter): ... // 429, Retry-After: ceil(retryAfter)
/// }
/// ```
final class IngestRateLimiter: Sendable {
    enum Decision: Equatable {
        case admitted
        /// Try again after this long.
        case refused(retryAfter: Duration)
    }

    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let buckets = Mutex<[String: Bucket]>([:])

    init() {}

    func admit(gateway: String, readings: Int, perSecond rate: Double, now: ContinuousClock.Instant) -> Decision {
        let capacity = rate
        let need = min(Double(readings), capacity)
        return buckets.withLock { buckets in
            var bucket = buckets[gateway] ?? Bucket(tokens: capacity, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(capacity, bucket.tokens + max(0, seconds) * rate)
            bucket.updated = max(bucket.updated, now)
            defer { buckets[gateway] = bucket }
            guard bucket.tokens >= need else {
                let wait = (need - bucket.tokens) / rate
                return .refused(retryAfter: .milliseconds(Int64((wait * 1000).rounded(.up))))
            }
            bucket.tokens -= Double(readings)
            return .admitted
        }
    }
}
