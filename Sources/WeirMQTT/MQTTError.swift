import CMosquitto

/// An MQTT failure a user can act on: what failed, and libmosquitto's own words for it.
public struct MQTTError: Error, Sendable, CustomStringConvertible, Hashable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let badConfiguration = Code("bad MQTT configuration")
        /// The broker refused the connection (CONNACK with an error: bad credentials, id...).
        public static let refused = Code("connection refused")
        /// The broker could not be reached in time.
        public static let unreachable = Code("broker unreachable")
        /// The TLS handshake failed (an untrusted certificate, a name mismatch, no TLS).
        public static let tls = Code("TLS failure")
        /// The connection is gone (disconnected before the operation completed).
        public static let disconnected = Code("disconnected")
        /// The broker did not grant a subscription.
        public static let subscriptionRejected = Code("subscription rejected")
        /// A libmosquitto call failed.
        public static let library = Code("libmosquitto error")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// An error for a failed libmosquitto call, with its `mosquitto_strerror` text.
    static func library(_ operation: String, _ rc: Int32) -> MQTTError {
        let text = mosquitto_strerror(rc).map { String(cString: $0) } ?? "code \(rc)"
        return MQTTError(.library, "\(operation) failed: \(text)")
    }

    public var description: String { "\(code): \(message)" }
}
