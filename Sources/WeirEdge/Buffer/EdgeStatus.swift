import Foundation

/// What `weir-edge status` shows: the buffer's depth and age, the uplink's health and the
/// totals kept since the buffer file was created.
public struct EdgeStatus: Sendable, Codable, Hashable {
    public var gateway: String
    public var chunks: Int
    public var readings: Int64
    public var bytes: Int64
    /// Age of the oldest chunk waiting, in ms (0 when empty).
    public var oldestAgeMs: Int64
    /// Time since the last successful forward, in ms (`nil`: never).
    public var sinceLastForwardMs: Int64?
    /// How far forwarding lags behind sealing: the oldest waiting chunk's age.
    public var forwardLagMs: Int64
    public var pendingDropRows: Int
    public var quarantinedChunks: Int
    public var rejectedChunks: Int
    /// Readings in the rejected chunks (kept in the `rejected` table, never resent).
    public var rejectedReadings: Int64
    /// The newest rejection: batch, HTTP status and the cloud's response.
    public var lastRejection: String?
    /// Dead letters kept in the table (capped by `dead_letters.max_rows`; the
    /// `dead_letters` counter has them all).
    public var deadLetterRows: Int
    /// Clock notes kept in the same table (readings accepted with the receive time instead
    /// of a bad timestamp, `on_bad_timestamp: receive-time`); not dead letters, capped
    /// apart from them. The `clock_replaced` counter has them all.
    public var clockNoteRows: Int = 0
    /// The ``UplinkState`` last recorded, as its text (a file written by an older edge may
    /// hold a word this one does not use).
    public var uplinkState: String
    /// The weir-cloud URL the uplink sends to (one of `uplink.url`'s list).
    public var uplinkURL: String? = nil
    public var lastUplinkError: String?
    public var lastUplinkErrorAt: Int64?
    /// The ``BrokerState`` last recorded, as its text: `connected`, `not connected`,
    /// `stopped` (the edge is not running), or `unknown` (no edge has run on this file yet).
    public var brokerState: String = BrokerState.unknown.rawValue
    /// Why the broker connection last failed or was lost, and when (epoch ms).
    public var lastBrokerError: String?
    public var lastBrokerErrorAt: Int64?
    /// Ingest's liveness: `ok`, `starting` (not yet subscribed), `stalled` (messages wait
    /// and nothing moves), `stopped`, or `unknown` (no edge has run on this file yet).
    /// `weir-edge status --config` asks the running edge's `/healthz` when it can, so a
    /// stall shows even when the buffer file cannot be written.
    public var ingestState: IngestState = .unknown
    /// When the stall began (epoch ms), and why.
    public var ingestStalledSince: Int64?
    public var ingestReason: String?
    /// Totals (`accepted_readings`, `dead_letters`, `forwarded_readings`, `evicted_readings`,
    /// `filtered_<reason>`, ...).
    public var counters: [String: Int64]
    /// Per device: readings the filters removed, by reason (`range`, `dedup`, `deadband`,
    /// `rate_limit`, `downsample`), bad timestamps (`bad_timestamp` rejected,
    /// `clock_replaced` given the receive time), and readings that came without a time
    /// (`stamped_receive_time`, given the receive time).
    public var deviceCounters: [String: [String: Int64]] = [:]
    /// How many devices the text lists (the most affected first); `--json` has them all.
    public static let devicesShown = 20

    /// Human-readable lines.
    public var text: String {
        func age(_ ms: Int64) -> String { ms <= 0 ? "0s" : formatMs(ms) }
        var lines = [
            "gateway:              \(gateway)",
            "buffer:               \(chunks) chunks, \(readings) readings, \(bytes) bytes",
            "oldest chunk age:     \(age(oldestAgeMs))",
            "forward lag:          \(age(forwardLagMs))",
            "last forward:         \(sinceLastForwardMs.map { "\(age($0)) ago" } ?? "never")",
            "broker:               \(brokerState)" + (brokerState == BrokerState.connected.rawValue ? "" : lastBrokerError.map { " (last error: \($0))" } ?? ""),
            "ingest:               \(ingestLine)",
            "uplink:               \(uplinkState)" + (uplinkURL.map { " (to \($0))" } ?? ""),
            "last uplink error:    \(lastUplinkError ?? "none")",
            "drop ledger (unsent): \(pendingDropRows) rows",
            "quarantined chunks:   \(quarantinedChunks)",
            "rejected chunks:      \(rejectedChunks) (\(rejectedReadings) readings, kept, not resent)"
                + (lastRejection.map { "; last: \($0)" } ?? ""),
            "dead letters:         \(counters["dead_letters"] ?? 0) total, \(deadLetterRows) kept",
            "clock notes:          \(counters["clock_replaced"] ?? 0) total, \(clockNoteRows) kept (readings given the receive time for a bad timestamp)",
        ]
        lines.append("totals:")
        for (name, value) in counters.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(name): \(value)")
        }
        if !deviceCounters.isEmpty {
            lines.append("per device (filter drops by reason, bad timestamps, readings without a time), most first:")
            let ranked = deviceCounters.map { (device: $0.key, counts: $0.value, total: $0.value.values.reduce(0, +)) }
                .sorted { ($0.total, $1.device) > ($1.total, $0.device) }
            for entry in ranked.prefix(Self.devicesShown) {
                let counts = entry.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                lines.append("  \(entry.device): \(counts)")
            }
            if ranked.count > Self.devicesShown {
                lines.append("  ... and \(ranked.count - Self.devicesShown) more devices (weir-edge status --json lists every one)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `ok`, or `stalled since <time> (<reason>)`.
    var ingestLine: String {
        guard ingestState == .stalled else { return ingestState.rawValue }
        let since = ingestStalledSince.map { " since " + Self.utc($0) } ?? ""
        return "stalled" + since + (ingestReason.map { " (\($0))" } ?? "")
    }

    /// `2026-12-05T16:40:00Z` for epoch ms.
    static func utc(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: Double(ms) / 1000).formatted(.iso8601)
    }

    private func formatMs(_ ms: Int64) -> String {
        if ms < 1000 { return "\(ms)ms" }
        let s = ms / 1000
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60)m"
    }
}
