import Synchronization

/// Every device's recent activity (`completeness_1h`, sparkline), computed at most once per
/// `maxAge` for `GET /v1/devices` and the fleet page: a fleet of 1,000 devices costs a
/// query per series.
public final class RecentActivityCache: Sendable {
    let source: any ContinuitySource
    let maxAge: Duration
    private let cached = Mutex<(at: ContinuousClock.Instant, value: [String: DeviceRecent])?>(nil)

    public init(source: any ContinuitySource, maxAge: Duration = .seconds(2)) {
        self.source = source
        self.maxAge = maxAge
    }

    public func get() async throws -> [String: DeviceRecent] {
        if let hit = cached.withLock({ $0 }), ContinuousClock.now - hit.at < maxAge { return hit.value }
        let value = try await source.recentActivity()
        cached.withLock { $0 = (.now, value) }
        return value
    }
}
