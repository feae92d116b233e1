/// Ingest's liveness, as `/healthz`, `weir-edge status` and the buffer file say it (the
/// raw value is the word they show).
public enum IngestState: String, Sendable, Codable, Hashable {
    /// Running, not yet subscribed to every topic.
    case starting
    case ok
    /// Messages wait and nothing moves (`LivenessCheck`).
    case stalled
    /// The edge stopped (written on the way out).
    case stopped
    /// No edge has run on this buffer file yet.
    case unknown
}
