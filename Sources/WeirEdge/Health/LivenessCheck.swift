import WeirMQTT

/// Decides, from what the moving parts report, whether the edge has stopped making
/// progress: pure, so every case is tested without a broker.
///
/// Stalled means messages wait for the edge and nothing moves for longer than `limit`:
/// - the consumer has taken nothing while messages waited in the inbound queue;
/// - the network thread has been blocked on the full inbound queue (it then reads nothing
///   from the broker, not even the acknowledgements it waits for);
/// - a subscription has not been granted while connected;
/// - the uplink loop is overdue (it did not come back from a request or a wait in time).
///
/// A broker that is down or a cloud that refuses is not a stall: those are reported by
/// their own lines, and restarting the edge would not help.
public struct LivenessCheck: Sendable {
    /// How long nothing may move before it is a stall.
    public var limit: Duration

    public init(limit: Duration) {
        self.limit = limit
    }

    /// What the check looks at, taken at one moment.
    public struct Inputs: Sendable {
        public var now: ContinuousClock.Instant
        public var inbound: InboundProgress
        public var pendingGrant: (pattern: String, since: ContinuousClock.Instant)?
        /// Since when the uplink loop has been overdue (`nil`: on time).
        public var uplinkOverdueSince: ContinuousClock.Instant?

        public init(now: ContinuousClock.Instant, inbound: InboundProgress,
                    pendingGrant: (pattern: String, since: ContinuousClock.Instant)? = nil,
                    uplinkOverdueSince: ContinuousClock.Instant? = nil) {
            self.now = now
            self.inbound = inbound
            self.pendingGrant = pendingGrant
            self.uplinkOverdueSince = uplinkOverdueSince
        }
    }

    /// A stall: since when nothing moved, and why, in words for an operator.
    public struct Stall: Sendable, Hashable {
        public var since: ContinuousClock.Instant
        public var reason: String
    }

    /// The oldest stall among the inputs, or `nil` when everything moves.
    public func evaluate(_ inputs: Inputs) -> Stall? {
        var candidates: [Stall] = []
        let inbound = inputs.inbound
        if let since = inbound.waitingSince {
            candidates.append(Stall(since: since, reason: "\(inbound.waiting) received messages wait and the consumer has taken none for \(Self.seconds(inputs.now - since))"))
        }
        if let since = inbound.producerBlockedSince {
            candidates.append(Stall(since: since, reason: "the MQTT network thread has waited \(Self.seconds(inputs.now - since)) for room in the full inbound queue (\(inbound.waiting + inbound.inHand) messages unprocessed); nothing is read from the broker"))
        }
        if let grant = inputs.pendingGrant {
            candidates.append(Stall(since: grant.since, reason: "the broker has not granted the subscription to '\(grant.pattern)' for \(Self.seconds(inputs.now - grant.since))"))
        }
        if let since = inputs.uplinkOverdueSince {
            candidates.append(Stall(since: since, reason: "the uplink loop has made no progress for \(Self.seconds(inputs.now - since)) past its deadline"))
        }
        return candidates.filter { inputs.now - $0.since >= limit }.min { $0.since < $1.since }
    }

    /// How long the hand-over has not moved while messages waited (zero when none wait):
    /// `weir_edge_ingest_last_progress_seconds`.
    public func sinceProgress(_ inputs: Inputs) -> Duration {
        let since = [inputs.inbound.waitingSince, inputs.inbound.producerBlockedSince].compactMap { $0 }.min()
        return since.map { inputs.now - $0 } ?? .zero
    }

    static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return ms < 10_000 ? "\(Double(ms / 100) / 10)s" : "\(ms / 1000)s"
    }
}
