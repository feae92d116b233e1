/// One message received from the broker, copied out of libmosquitto's buffers.
public struct MQTTMessage: Sendable, Hashable {
    /// The topic it was published on.
    public var topic: String
    /// The payload bytes, unmodified.
    public var payload: [UInt8]
    /// The QoS it was delivered with.
    public var qos: Int32
    /// The packet id (0 for QoS 0).
    public var mid: Int32
    /// Whether the broker delivered it as a retained message.
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: Int32, mid: Int32 = 0, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.mid = mid
        self.retain = retain
    }
}
