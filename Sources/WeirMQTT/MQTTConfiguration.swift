/// How to reach an MQTT broker, and how the session behaves.
///
/// The edge uses a fixed client id with `cleanSession: false`, so the broker keeps its
/// QoS 1 subscriptions and queues messages for it while it restarts.
///
/// ```swift
/// var config = try MQTTConfiguration(url: "mqtt://127.0.0.1:1883", clientID: "weir-edge-gw-1")
/// config.cleanSession = false
/// ```
public struct MQTTConfiguration: Sendable, Hashable {
    /// Broker host name or address.
    public var host: String
    /// Broker TCP port (1883 plain, 8883 TLS by convention).
    public var port: Int
    /// The MQTT client id. A fixed id plus `cleanSession: false` is a persistent session.
    public var clientID: String
    /// `false` keeps the session (subscriptions and queued QoS 1 messages) across reconnects.
    public var cleanSession: Bool
    public var username: String?
    public var password: String?
    /// A CA certificate file (PEM); when set, the connection uses TLS.
    public var caFile: String?
    /// Keep-alive interval in seconds.
    public var keepAlive: Int
    /// How many received messages may wait for the consumer before the network thread
    /// stops reading (backpressure: the broker's in-flight window holds the rest).
    public var inboundCapacity: Int
    /// Reconnect delay: starts at `reconnectDelayMin` seconds and doubles up to `reconnectDelayMax`.
    public var reconnectDelayMin: Int
    public var reconnectDelayMax: Int
    /// How long `connect()` waits for the first CONNACK; `nil` waits until cancelled.
    public var connectTimeout: Duration?

    public init(
        host: String = "127.0.0.1",
        port: Int = 1883,
        clientID: String,
        cleanSession: Bool = false,
        username: String? = nil,
        password: String? = nil,
        caFile: String? = nil,
        keepAlive: Int = 30,
        inboundCapacity: Int = 1024,
        reconnectDelayMin: Int = 1,
        reconnectDelayMax: Int = 30,
        connectTimeout: Duration? = .seconds(30)
    ) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.cleanSession = cleanSession
        self.username = username
        self.password = password
        self.caFile = caFile
        self.keepAlive = keepAlive
        self.inboundCapacity = inboundCapacity
        self.reconnectDelayMin = reconnectDelayMin
        self.reconnectDelayMax = reconnectDelayMax
        self.connectTimeout = connectTimeout
    }

    /// A configuration from a broker URL: `mqtt://host[:port]` (default port 1883) or
    /// `mqtts://host[:port]` (default 8883; TLS needs `caFile` as well). User info in the
    /// URL (`mqtt://user:pass@host`) sets `username` and `password`.
    public init(url: String, clientID: String, cleanSession: Bool = false) throws(MQTTError) {
        let endpoint = try MQTTConfiguration.parseURL(url)
        self.init(host: endpoint.host, port: endpoint.port, clientID: clientID, cleanSession: cleanSession,
                  username: endpoint.username, password: endpoint.password)
    }

    /// The parts of an `mqtt://` or `mqtts://` URL.
    public struct Endpoint: Sendable, Hashable {
        public var host: String
        public var port: Int
        public var tls: Bool
        public var username: String?
        public var password: String?
    }

    /// Parses `mqtt://[user[:pass]@]host[:port]` (also `mqtts://`, `tcp://`, IPv6 in brackets).
    public static func parseURL(_ url: String) throws(MQTTError) -> Endpoint {
        func bad(_ why: String) -> MQTTError {
            MQTTError(.badConfiguration, "'\(url.prefix(80))' is not an MQTT URL: \(why) (write e.g. mqtt://127.0.0.1:1883)")
        }
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw bad("the scheme is missing") }
        let scheme = parts[0].lowercased()
        let tls: Bool
        switch scheme {
        case "mqtt", "tcp": tls = false
        case "mqtts", "ssl", "tls": tls = true
        default: throw bad("unknown scheme '\(scheme)'")
        }
        var rest = parts[1]
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else { throw bad("a path is not allowed") }
            rest = rest[..<slash]
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                username = String(userInfo[..<colon])
                password = String(userInfo[userInfo.index(after: colon)...])
            } else {
                username = String(userInfo)
            }
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("unclosed '[' in the host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw bad("unexpected text after the host") }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw bad("the host is missing") }
        var port = tls ? 8883 : 1883
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw bad("'\(portText)' is not a port (1–65535)") }
            port = p
        }
        return Endpoint(host: String(host), port: port, tls: tls, username: username, password: password)
    }
}
