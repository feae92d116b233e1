import WeirCore

/// One MQTT publish the simulator makes: where, what bytes, and what it carries.
public struct SimulatedMessage: Sendable, Hashable {
    /// Why the message exists.
    public enum Kind: Sendable, Hashable {
        /// New readings, sent for the first time (in time, reordered, or from a backlog).
        case readings
        /// A repeat of a message already sent: same bytes, same readings.
        case duplicate
        /// Garbage the edge must dead-letter; carries no readings.
        case malformed(MalformedKind)
    }

    /// Index of the device that sent it.
    public var device: Int
    public var topic: String
    public var payload: [UInt8]
    public var kind: Kind
    /// The valid readings in the payload (empty for malformed messages).
    public var readings: [Reading]

    public init(device: Int, topic: String, payload: [UInt8], kind: Kind, readings: [Reading]) {
        self.device = device
        self.topic = topic
        self.payload = payload
        self.kind = kind
        self.readings = readings
    }
}

/// One sample of a device: a time and a value for every metric.
struct Sample: Sendable, Hashable {
    var ts: Int64
    var values: [Double]
}
