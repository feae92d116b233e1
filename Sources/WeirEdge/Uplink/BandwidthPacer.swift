/// `uplink.bandwidth`: spaces the requests so that the bytes sent average at most that
/// many per second (a metered or shared link), without splitting a request.
struct BandwidthPacer {
    /// Bytes per second; `nil` or 0: no cap.
    let bytesPerSecond: Int64?
    private var nextSendAt: ContinuousClock.Instant

    init(bytesPerSecond: Int64?, now: ContinuousClock.Instant = .now) {
        self.bytesPerSecond = bytesPerSecond
        self.nextSendAt = now
    }

    /// Books a request of `bytes` sent at `now`; returns when it may go (`nil`: at once).
    mutating func reserve(bytes: Int, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard let bandwidth = bytesPerSecond, bandwidth > 0 else { return nil }
        let start = nextSendAt > now ? nextSendAt : nil
        // The next request waits until this one's bytes have had their share of the link.
        nextSendAt = max(nextSendAt, now) + .milliseconds(Int64(bytes) * 1000 / bandwidth)
        return start
    }
}
