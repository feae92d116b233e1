import WeirCore

/// Exponential backoff with full jitter: the n-th retry waits a random time in
/// `[0, min(cap, base · 2ⁿ)]` (AWS's "full jitter", which spreads a fleet of gateways
/// that lost the cloud at the same moment).
///
/// The ceiling is state (``UplinkStateMachine`` keeps it, and its tests pin it); the
/// random draw is ``jittered(upTo:)``, done by whoever sleeps.
struct Backoff: Sendable {
    let base: Duration
    let cap: Duration
    private(set) var attempt = 0

    init(base: Duration, cap: Duration) {
        self.base = base
        self.cap = cap
    }

    /// The next ceiling; each call doubles it until `cap`.
    mutating func nextCeiling() -> Duration {
        let baseMs = Double(base.milliseconds)
        let ceiling = min(Double(cap.milliseconds), baseMs * Double(1 << min(attempt, 30)))
        attempt += 1
        return .milliseconds(Int64(ceiling))
    }

    mutating func reset() { attempt = 0 }

    /// A random time in `[0, ceiling]` (at least the chance of a millisecond).
    static func jittered(upTo ceiling: Duration) -> Duration {
        .milliseconds(Int64(Double.random(in: 0...max(1, Double(ceiling.milliseconds)))))
    }
}
