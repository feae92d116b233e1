import Synchronization

/// A loop's promise to come back: before each request or wait the loop says how long it
/// may take, and the `LivenessMonitor` calls the loop stuck once that deadline has passed.
public final class LoopHeartbeat: Sendable {
    private let deadline = Mutex<ContinuousClock.Instant?>(nil)

    public init() {}

    /// The loop is alive and will beat again within `within`.
    public func beat(within: Duration) {
        let next = ContinuousClock.now + within
        deadline.withLock { $0 = next }
    }

    /// The loop ended on purpose (shutdown): no deadline any more.
    public func stop() {
        deadline.withLock { $0 = nil }
    }

    /// Since when the loop has been overdue, or `nil` while it is on time.
    public func overdueSince(now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant? {
        deadline.withLock { d in
            guard let d, d < now else { return nil }
            return d
        }
    }
}
