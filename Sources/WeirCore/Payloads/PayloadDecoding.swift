/// The payload formats a subscription can name (`format: json | senml | line`).
public enum PayloadFormat: String, Sendable, Hashable, CaseIterable, Codable {
    case json
    case senml
    case line
}

/// Where a payload came from: what a decoder needs besides the bytes.
public struct PayloadContext: Sendable, Hashable {
    /// The MQTT topic it arrived on.
    public var topic: String
    /// The topic's `{device}` level, when the subscription pattern has one.
    public var device: String?
    /// When the edge received it, epoch ms; readings without a time get this one.
    public var receivedAt: Int64

    public init(topic: String, device: String?, receivedAt: Int64) {
        self.topic = topic
        self.device = device
        self.receivedAt = receivedAt
    }
}

/// Why (part of) a payload could not become readings. `reason` names the problem and
/// where (`"record 3: field 'v' is a string"`); it goes into the dead-letter table.
public struct PayloadProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// What one payload decoded to: the readings it held, and the parts that could not be
/// read (a payload can be partly good: a bad record in an array does not sink the rest).
public struct DecodedPayload: Sendable, Hashable {
    public var readings: [Reading]
    public var problems: [PayloadProblem]
    /// Where in `readings` the readings are that got the receive time because they
    /// carried no time of their own (in ascending order).
    public var stamped: [Int]

    /// How many readings got the receive time.
    public var stampedWithReceiveTime: Int { stamped.count }

    public init(readings: [Reading] = [], problems: [PayloadProblem] = [], stamped: [Int] = []) {
        self.readings = readings
        self.problems = problems
        self.stamped = stamped
    }
}

/// Turns one message payload into readings. Total: any bytes give readings, problems or
/// both — never a crash. Implementations are value types, safe to share across tasks.
public protocol PayloadDecoder: Sendable {
    func decode(_ payload: [UInt8], context: PayloadContext) -> DecodedPayload
}
