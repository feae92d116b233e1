/// A payload or reading the edge could not accept: kept with its topic, the first 4 KiB of
/// the payload and the reason, for `weir-edge dead-letters`.
///
/// The same table keeps clock notes (`kind == .clockNote`): a reading whose bad timestamp
/// was replaced by the receive time (`on_bad_timestamp: receive-time`) was accepted, and
/// its note keeps the original time. Notes are counted apart from dead letters.
public struct DeadLetter: Sendable, Hashable, Codable {
    /// What a row records.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// Something lost: a payload or reading that was not accepted.
        case deadLetter = "dead_letter"
        /// A reading accepted with the receive time instead of its bad timestamp.
        case clockNote = "clock_note"
    }

    /// The longest payload prefix kept.
    public static let maxPayloadBytes = 4096

    public var at: Int64
    public var topic: String
    public var payload: [UInt8]
    public var reason: String
    public var kind: Kind

    public init(at: Int64, topic: String, payload: some Collection<UInt8>, reason: String, kind: Kind = .deadLetter) {
        self.at = at
        self.topic = topic
        self.payload = Array(payload.prefix(DeadLetter.maxPayloadBytes))
        self.reason = reason
        self.kind = kind
    }
}
