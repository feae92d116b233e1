import Synchronization

/// The edge's health as `/healthz` answers it: written by the `LivenessMonitor` (stalls)
/// and by ingest (ready once subscribed), read by the metrics server.
public final class EdgeHealth: Sendable {
    /// What `/healthz` answers (`status` is `starting`, `ok` or `stalled`).
    public struct Snapshot: Sendable, Codable, Hashable {
        public var status: IngestState
        /// Epoch ms when the stall began (`stalled` only).
        public var since: Int64?
        public var reason: String?
        /// Subscribed to every topic since start.
        public var subscribed: Bool
        public var broker: BrokerState
        /// Messages received and waiting for the consumer.
        public var inboundWaiting: Int
        /// Seconds the hand-over has not moved while messages waited (0 when none wait).
        public var lastProgressSeconds: Double

        /// 503 while stalled, 200 otherwise.
        public var httpStatus: Int { status == .stalled ? 503 : 200 }

        enum CodingKeys: String, CodingKey {
            case status, since, reason, subscribed, broker
            case inboundWaiting = "inbound_waiting"
            case lastProgressSeconds = "last_progress_seconds"
        }
    }

    /// What changed with an update, for the caller to log and report once.
    public enum Change: Sendable, Equatable {
        case none
        case stalled
        case resumed(after: Int64)
    }

    private let state = Mutex(Snapshot(status: .starting, subscribed: false, broker: .notConnected,
                                       inboundWaiting: 0, lastProgressSeconds: 0))

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// Ingest is subscribed: `starting` becomes `ok`.
    public func markSubscribed() {
        state.withLock { s in
            s.subscribed = true
            if s.status == .starting { s.status = .ok }
        }
    }

    /// Records one liveness check. `stall` is when (epoch ms) and why, or `nil`.
    public func update(stall: (sinceMs: Int64, reason: String)?, broker: BrokerState, inboundWaiting: Int,
                       lastProgressSeconds: Double, nowMs: Int64) -> Change {
        state.withLock { s in
            s.broker = broker
            s.inboundWaiting = inboundWaiting
            s.lastProgressSeconds = lastProgressSeconds
            switch (stall, s.status == .stalled) {
            case (let stall?, false):
                s.status = .stalled
                s.since = stall.sinceMs
                s.reason = stall.reason
                return .stalled
            case (let stall?, true):
                s.reason = stall.reason   // the same stall, its figures grown
                return .none
            case (nil, true):
                let since = s.since ?? nowMs
                s.status = s.subscribed ? .ok : .starting
                s.since = nil
                s.reason = nil
                return .resumed(after: max(0, nowMs - since))
            case (nil, false):
                return .none
            }
        }
    }
}
