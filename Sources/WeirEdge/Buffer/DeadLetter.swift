/// A payload or reading the edge could not accept: kept with its topic, the first 4 KiB of
/// the payload and the reason, for `weir-edge dead-letters`.
public struct DeadLetter: Sendable, Hashable, Codable {
    /// The longest payload prefix kept.
    public static let maxPayloadBytes = 4096

    public var at: Int64
    public var topic: String
    public var payload: [UInt8]
    public var reason: String

    public init(at: Int64, topic: String, payload: some Collection<UInt8>, reason: String) {
        self.at = at
        self.topic = topic
        self.payload = Array(payload.prefix(DeadLetter.maxPayloadBytes))
        self.reason = reason
    }
}
