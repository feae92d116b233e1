import WeirCore

/// Exponential backoff with full jitter: the n-th retry waits a random time in
/// `[0, min(cap, base · 2ⁿ)]` (AWS's "full jitter", which spreads a fleet of gateways
/// that lost the cloud at the same moment).
struct Backoff: Sendable {
    let base: Duration
    let cap: Duration
    private(set) var attempt = 0

    init(base: Duration, cap: Duration) {
        self.base = base
        self.cap = cap
    }

    /// The next delay; each call doubles the ceiling until `cap`.
    mutating func next() -> Duration {
        let baseMs = Double(base.milliseconds)
        let ceiling = min(Double(cap.milliseconds), baseMs * Double(1 << min(attempt, 30)))
        attempt += 1
        return .milliseconds(Int64(Double.random(in: 0...max(1, ceiling))))
    }

    mutating func reset() { attempt = 0 }
}
