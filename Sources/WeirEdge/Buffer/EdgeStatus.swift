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
    public var deadLetterRows: Int
    public var uplinkState: String
    public var lastUplinkError: String?
    public var lastUplinkErrorAt: Int64?
    /// Totals (`accepted_readings`, `dead_letters`, `forwarded_readings`, `evicted_readings`,
    /// `filtered_<reason>`, ...).
    public var counters: [String: Int64]

    /// Human-readable lines.
    public var text: String {
        func age(_ ms: Int64) -> String { ms <= 0 ? "0s" : formatMs(ms) }
        var lines = [
            "gateway:              \(gateway)",
            "buffer:               \(chunks) chunks, \(readings) readings, \(bytes) bytes",
            "oldest chunk age:     \(age(oldestAgeMs))",
            "forward lag:          \(age(forwardLagMs))",
            "last forward:         \(sinceLastForwardMs.map { "\(age($0)) ago" } ?? "never")",
            "uplink:               \(uplinkState)",
            "last uplink error:    \(lastUplinkError ?? "none")",
            "drop ledger (unsent): \(pendingDropRows) rows",
            "quarantined chunks:   \(quarantinedChunks)",
            "rejected chunks:      \(rejectedChunks) (\(rejectedReadings) readings, kept, not resent)"
                + (lastRejection.map { "; last: \($0)" } ?? ""),
            "dead letters:         \(counters["dead_letters"] ?? 0) total, \(deadLetterRows) kept",
        ]
        lines.append("totals:")
        for (name, value) in counters.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(name): \(value)")
        }
        return lines.joined(separator: "\n")
    }

    private func formatMs(_ ms: Int64) -> String {
        if ms < 1000 { return "\(ms)ms" }
        let s = ms / 1000
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60)m"
    }
}
