import WeirCore

/// Everything `weir-edge run` needs, with the defaults of DESIGN.md. Loaded from YAML plus
/// `WEIR_EDGE_...` environment overrides by `EdgeConfiguration.load` (see
/// `EdgeConfiguration+Config.swift` for the keys).
///
/// ```swift
/// var config = EdgeConfiguration(gateway: "gw-1")
/// config.buffer.flushInterval = .milliseconds(100)
/// config.uplink.url = "http://127.0.0.1:8080"
/// ```
public struct EdgeConfiguration: Sendable {
    /// The gateway's name; the cloud knows it by this name and its token.
    public var gateway: String
    public var mqtt = MQTT()
    public var buffer = Buffer()
    public var uplink = Uplink()
    public var clock = Clock()
    public var filters: [FilterRule] = []
    public var deadLetters = DeadLetters()
    public var metrics = Metrics()
    public var liveness = Liveness()
    /// `trace | debug | info | notice | warning | error`.
    public var logLevel = "info"

    public init(gateway: String) {
        self.gateway = gateway
    }

    /// The MQTT input.
    public struct MQTT: Sendable {
        public var url = "mqtt://127.0.0.1:1883"
        /// Defaults to `weir-edge-<gateway>`; fixed so the broker keeps the session.
        public var clientID: String?
        public var username: String?
        public var password: String?
        public var caFile: String?
        public var keepAlive: Duration = .seconds(30)
        /// Messages received but not yet processed before the reader stops reading.
        public var inboundCapacity = 256
        public var subscriptions: [Subscription] = [Subscription(topic: "devices/{device}/telemetry")]
        public init() {}
    }

    /// One subscription: a topic pattern with an optional `{device}` level, and its format.
    public struct Subscription: Sendable, Hashable {
        public var topic: TopicPattern
        public var format: PayloadFormat
        public var qos: Int32
        /// `json`: the unit of numeric `ts` values.
        public var tsUnit: TimestampUnit
        /// `line`: the unit of the timestamps.
        public var precision: TimestampUnit

        public init(topic: String, format: PayloadFormat = .json, qos: Int32 = 1,
                    tsUnit: TimestampUnit = .milliseconds, precision: TimestampUnit = .nanoseconds) {
            self.topic = TopicPattern(topic)
            self.format = format
            self.qos = qos
            self.tsUnit = tsUnit
            self.precision = precision
        }
    }

    /// The SQLite store-and-forward buffer.
    public struct Buffer: Sendable {
        public var path = "./weir-edge.db"
        public var flushInterval: Duration = .milliseconds(100)
        public var chunkMaxReadings = 10_000
        public var maxBytes: Int64 = 1 << 30
        public var maxAge: Duration = .seconds(7 * 86_400)
        public init() {}
    }

    /// Replay order of a backlog.
    public enum ReplayOrder: String, Sendable, CaseIterable {
        case oldestFirst = "oldest-first"
        case liveFirst = "live-first"
    }

    /// Body format of `POST /v1/batches`.
    public enum WireFormat: String, Sendable, CaseIterable {
        case binary
        case json
    }

    /// Forwarding to weir-cloud.
    public struct Uplink: Sendable {
        /// weir-cloud's URLs (replicas), tried in order: on a connection error or a 5xx the
        /// uplink moves to the next, and backs off once all have failed.
        public var urls = ["http://127.0.0.1:8080"]
        /// The first of ``urls``; setting it leaves only that one.
        public var url: String {
            get { urls[0] }
            set { urls = [newValue] }
        }
        public var token: String?
        public var replay: ReplayOrder = .oldestFirst
        /// Most body bytes in one request (chunks are merged up to this).
        public var maxRequestBytes: Int64 = 1 << 20
        /// Most readings in one request.
        public var maxRequestReadings = 50_000
        /// Bytes per second on the uplink; `nil` is unlimited.
        public var bandwidth: Int64?
        public var timeout: Duration = .seconds(30)
        public var backoffBase: Duration = .milliseconds(200)
        public var backoffCap: Duration = .seconds(30)
        public var format: WireFormat = .binary
        /// CA certificate(s) (PEM) trusted for the cloud's HTTPS certificate; `nil`: the
        /// system's trust store.
        public var caFile: String?
        /// This gateway's client certificate (PEM) for mutual TLS, with `clientKeyFile`.
        public var clientCertFile: String?
        /// The client certificate's private key (PEM, unencrypted).
        public var clientKeyFile: String?
        public init() {}
    }

    /// Device clocks.
    public struct Clock: Sendable {
        public var maxClockSkew: Duration = .seconds(300)
        public var onBadTimestamp: ClockPolicy.OnBadTimestamp = .reject
        public init() {}
    }

    /// The dead-letter table.
    public struct DeadLetters: Sendable {
        /// Rows kept of each kind — dead letters and clock notes (`DeadLetter.Kind`) —
        /// older ones go (the counters stay).
        public var maxRows = 10_000
        public init() {}
    }

    /// The Prometheus endpoint.
    public struct Metrics: Sendable {
        /// `host:port` for `GET /metrics`; `nil` turns it off.
        public var listen: String? = "127.0.0.1:9464"
        public init() {}
    }

    /// When the edge calls itself stalled (`LivenessCheck`).
    public struct Liveness: Sendable {
        /// Messages wait and nothing moves for this long: `/healthz` answers 503, `status`
        /// says `ingest: stalled`, and systemd's watchdog is no longer petted.
        public var stallAfter: Duration = .seconds(10)
        public init() {}
    }

    /// The MQTT client id used for the persistent session.
    public var mqttClientID: String { mqtt.clientID ?? "weir-edge-\(gateway)" }
}
