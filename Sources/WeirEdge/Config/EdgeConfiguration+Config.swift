import Foundation
import WeirCore
import WeirSupport

extension EdgeConfiguration {
    /// Every key the edge reads (`*` is a list position). Each can be overridden by an
    /// environment variable: `WEIR_EDGE_` + the key in capitals with `.` as `_`
    /// (`WEIR_EDGE_UPLINK_URL`, `WEIR_EDGE_FILTERS_0_RANGE_MAX`).
    ///
    /// | key | default |
    /// |---|---|
    /// | `gateway` | required |
    /// | `log_level` | `info` |
    /// | `mqtt.url` | `mqtt://127.0.0.1:1883` |
    /// | `mqtt.client_id` | `weir-edge-<gateway>` |
    /// | `mqtt.username`, `mqtt.password`, `mqtt.ca_file` | none |
    /// | `mqtt.keep_alive` | `30s` |
    /// | `mqtt.inbound_capacity` | `256` messages |
    /// | `mqtt.subscriptions[].topic` / `.format` / `.qos` / `.ts_unit` / `.precision` | `devices/{device}/telemetry`, `json`, `1`, `ms`, `ns` |
    /// | `buffer.path` | `./weir-edge.db` |
    /// | `buffer.flush_interval` | `100ms` |
    /// | `buffer.chunk_max_readings` | `10000` |
    /// | `buffer.max_bytes` / `buffer.max_age` | `1GiB` / `7d` |
    /// | `uplink.url` | `http://127.0.0.1:8080` |
    /// | `uplink.token` or `uplink.token_file` | none |
    /// | `uplink.replay` | `oldest-first` (or `live-first`) |
    /// | `uplink.max_request_bytes` / `uplink.max_request_readings` | `1MiB` / `50000` |
    /// | `uplink.bandwidth` | unlimited (bytes/s, e.g. `64KiB`) |
    /// | `uplink.timeout`, `uplink.backoff_base`, `uplink.backoff_cap` | `30s`, `200ms`, `30s` |
    /// | `uplink.format` | `binary` (or `json`) |
    /// | `uplink.ca_file` | none: the system's trust store (PEM CA that signed the cloud's certificate) |
    /// | `uplink.client_cert_file` / `uplink.client_key_file` | none (PEM; mutual TLS) |
    /// | `max_clock_skew` / `on_bad_timestamp` | `5m` / `reject` (or `receive-time`) |
    /// | `filters[].match`, `.range.min/.max`, `.dedup`, `.deadband.abs/.percent/.heartbeat`, `.rate_limit`, `.downsample.bucket/.aggregate` | none |
    /// | `dead_letters.max_rows` | `10000` (of each kind: dead letters, clock notes) |
    /// | `metrics.listen` | `127.0.0.1:9464` (`off` to disable) |
    /// | `liveness.stall_after` | `10s` (messages wait and nothing moves this long: stalled) |
    public static let keys: [String] = [
        "gateway", "log_level",
        "mqtt.url", "mqtt.client_id", "mqtt.username", "mqtt.password", "mqtt.ca_file", "mqtt.keep_alive", "mqtt.inbound_capacity",
        "mqtt.subscriptions.*.topic", "mqtt.subscriptions.*.format", "mqtt.subscriptions.*.qos",
        "mqtt.subscriptions.*.ts_unit", "mqtt.subscriptions.*.precision",
        "buffer.path", "buffer.flush_interval", "buffer.chunk_max_readings", "buffer.max_bytes", "buffer.max_age",
        "uplink.url", "uplink.token", "uplink.token_file", "uplink.replay", "uplink.max_request_bytes",
        "uplink.max_request_readings", "uplink.bandwidth", "uplink.timeout", "uplink.backoff_base", "uplink.backoff_cap",
        "uplink.format", "uplink.ca_file", "uplink.client_cert_file", "uplink.client_key_file",
        "max_clock_skew", "on_bad_timestamp",
        "filters.*.match", "filters.*.range.min", "filters.*.range.max", "filters.*.dedup",
        "filters.*.deadband.abs", "filters.*.deadband.percent", "filters.*.deadband.heartbeat",
        "filters.*.rate_limit", "filters.*.downsample.bucket", "filters.*.downsample.aggregate",
        "dead_letters.max_rows", "metrics.listen", "liveness.stall_after",
    ]

    /// Loads `file` (YAML) with `WEIR_EDGE_...` overrides. Any problem is a `WeirError`
    /// naming the key, where its value came from and what is wrong; nothing is started
    /// before this succeeds.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(WeirError) -> EdgeConfiguration {
        try parse(ConfigSource.load(file: file, environmentPrefix: "WEIR_EDGE", environment: environment))
    }

    /// Reads every setting from `source` (see `keys`).
    public static func parse(_ source: ConfigSource) throws(WeirError) -> EdgeConfiguration {
        try source.rejectUnknownKeys(allowed: keys)
        guard let gateway = source.string("gateway"), !gateway.isEmpty else {
            throw source.problem("gateway", "is required (the gateway's name, e.g. gw-1)")
        }
        do { try Reading.validateName(gateway, field: "gateway") } catch { throw source.problem("gateway", error.description) }
        var c = EdgeConfiguration(gateway: gateway)
        c.logLevel = try source.choice("log_level", ["trace", "debug", "info", "notice", "warning", "error", "critical"], default: "info")

        // MQTT
        c.mqtt.url = source.string("mqtt.url", default: c.mqtt.url)
        do { _ = try MQTTURL.check(c.mqtt.url) } catch { throw source.problem("mqtt.url", error.message) }
        c.mqtt.clientID = source.string("mqtt.client_id")
        c.mqtt.username = source.string("mqtt.username")
        c.mqtt.password = source.string("mqtt.password")
        c.mqtt.caFile = source.string("mqtt.ca_file")
        if let ca = c.mqtt.caFile, !FileManager.default.isReadableFile(atPath: ca) {
            throw source.problem("mqtt.ca_file", "\(ca) is not a readable file")
        }
        c.mqtt.keepAlive = try source.duration("mqtt.keep_alive", default: c.mqtt.keepAlive)
        if c.mqtt.keepAlive < .seconds(5) { throw source.problem("mqtt.keep_alive", "must be at least 5s") }
        c.mqtt.inboundCapacity = try source.int("mqtt.inbound_capacity", default: c.mqtt.inboundCapacity)
        if c.mqtt.inboundCapacity < 1 { throw source.problem("mqtt.inbound_capacity", "must be at least 1") }
        let subscriptionIndices = indices(source.children(of: "mqtt.subscriptions"))
        if !subscriptionIndices.isEmpty {
            c.mqtt.subscriptions = []
            for i in subscriptionIndices {
                let k = "mqtt.subscriptions.\(i)"
                guard let topic = source.string("\(k).topic") else { throw source.problem("\(k).topic", "is required") }
                var sub = Subscription(topic: topic)
                if let problem = sub.topic.problem { throw source.problem("\(k).topic", problem) }
                let format = try source.choice("\(k).format", PayloadFormat.allCases.map(\.rawValue), default: "json")
                sub.format = PayloadFormat(rawValue: format) ?? .json
                let qos = try source.int("\(k).qos", default: 1)
                guard (0...2).contains(qos) else { throw source.problem("\(k).qos", "must be 0, 1 or 2") }
                sub.qos = Int32(qos)
                let units = TimestampUnit.allCases.map(\.rawValue)
                sub.tsUnit = TimestampUnit(rawValue: try source.choice("\(k).ts_unit", units, default: "ms")) ?? .milliseconds
                sub.precision = TimestampUnit(rawValue: try source.choice("\(k).precision", units, default: "ns")) ?? .nanoseconds
                c.mqtt.subscriptions.append(sub)
            }
        }

        // Buffer
        c.buffer.path = source.string("buffer.path", default: c.buffer.path)
        if c.buffer.path.isEmpty { throw source.problem("buffer.path", "is empty") }
        c.buffer.flushInterval = try source.duration("buffer.flush_interval", default: c.buffer.flushInterval)
        if c.buffer.flushInterval < .milliseconds(1) || c.buffer.flushInterval > .seconds(60) {
            throw source.problem("buffer.flush_interval", "must be between 1ms and 60s")
        }
        c.buffer.chunkMaxReadings = try source.int("buffer.chunk_max_readings", default: c.buffer.chunkMaxReadings)
        if c.buffer.chunkMaxReadings < 1 || c.buffer.chunkMaxReadings > 1_000_000 {
            throw source.problem("buffer.chunk_max_readings", "must be between 1 and 1000000")
        }
        c.buffer.maxBytes = try source.byteSize("buffer.max_bytes", default: c.buffer.maxBytes)
        if c.buffer.maxBytes < 1024 { throw source.problem("buffer.max_bytes", "must be at least 1KiB") }
        c.buffer.maxAge = try source.duration("buffer.max_age", default: c.buffer.maxAge)
        if c.buffer.maxAge < .seconds(1) { throw source.problem("buffer.max_age", "must be at least 1s") }

        // Uplink
        // One URL, or a list of replicas: `url: [https://a:8443, https://b:8443]`.
        c.uplink.urls = source.list("uplink.url") ?? c.uplink.urls
        if c.uplink.urls.isEmpty { throw source.problem("uplink.url", "is an empty list; give at least one http(s) URL") }
        for url in c.uplink.urls where !(url.hasPrefix("http://") || url.hasPrefix("https://")) || URL(string: url)?.host == nil {
            throw source.problem("uplink.url", "'\(url.prefix(80))' is not an http(s) URL (e.g. http://127.0.0.1:8080)")
        }
        if Set(c.uplink.urls).count != c.uplink.urls.count {
            throw source.problem("uplink.url", "lists the same URL twice")
        }
        c.uplink.token = source.string("uplink.token")
        if let tokenFile = source.string("uplink.token_file") {
            if c.uplink.token != nil { throw source.problem("uplink.token_file", "give uplink.token or uplink.token_file, not both") }
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw source.problem("uplink.token_file", "\(tokenFile) is not a readable file")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if token.isEmpty { throw source.problem("uplink.token_file", "\(tokenFile) is empty") }
            c.uplink.token = token
        }
        let replay = try source.choice("uplink.replay", ReplayOrder.allCases.map(\.rawValue), default: c.uplink.replay.rawValue)
        c.uplink.replay = ReplayOrder(rawValue: replay) ?? .oldestFirst
        c.uplink.maxRequestBytes = try source.byteSize("uplink.max_request_bytes", default: c.uplink.maxRequestBytes)
        if c.uplink.maxRequestBytes < 1024 { throw source.problem("uplink.max_request_bytes", "must be at least 1KiB") }
        c.uplink.maxRequestReadings = try source.int("uplink.max_request_readings", default: c.uplink.maxRequestReadings)
        if c.uplink.maxRequestReadings < 1 { throw source.problem("uplink.max_request_readings", "must be at least 1") }
        if let text = source.string("uplink.bandwidth"), !["off", "none", "unlimited", "0"].contains(text.lowercased()) {
            c.uplink.bandwidth = try source.byteSize("uplink.bandwidth", default: 0)
            if (c.uplink.bandwidth ?? 0) < 128 { throw source.problem("uplink.bandwidth", "must be at least 128 bytes/s (or off)") }
        }
        c.uplink.timeout = try source.duration("uplink.timeout", default: c.uplink.timeout)
        c.uplink.backoffBase = try source.duration("uplink.backoff_base", default: c.uplink.backoffBase)
        c.uplink.backoffCap = try source.duration("uplink.backoff_cap", default: c.uplink.backoffCap)
        if c.uplink.backoffBase <= .zero || c.uplink.backoffCap < c.uplink.backoffBase {
            throw source.problem("uplink.backoff_cap", "backoff_base must be positive and backoff_cap at least backoff_base")
        }
        let format = try source.choice("uplink.format", WireFormat.allCases.map(\.rawValue), default: c.uplink.format.rawValue)
        c.uplink.format = WireFormat(rawValue: format) ?? .binary
        try loadUplinkTLS(source, into: &c.uplink)

        // Clock
        c.clock.maxClockSkew = try source.duration("max_clock_skew", default: c.clock.maxClockSkew)
        let onBad = try source.choice("on_bad_timestamp", ["reject", "receive-time"], default: "reject")
        c.clock.onBadTimestamp = ClockPolicy.OnBadTimestamp(rawValue: onBad) ?? .reject

        // Filters
        for i in indices(source.children(of: "filters")) {
            c.filters.append(try filterRule(source, "filters.\(i)"))
        }

        c.deadLetters.maxRows = try source.int("dead_letters.max_rows", default: c.deadLetters.maxRows)
        if c.deadLetters.maxRows < 1 { throw source.problem("dead_letters.max_rows", "must be at least 1") }
        if let listen = source.string("metrics.listen") {
            if ["off", "none", "false", ""].contains(listen.lowercased()) {
                c.metrics.listen = nil
            } else {
                guard HostPort(listen) != nil else { throw source.problem("metrics.listen", "'\(listen.prefix(60))' is not HOST:PORT") }
                c.metrics.listen = listen
            }
        }
        c.liveness.stallAfter = try source.duration("liveness.stall_after", default: c.liveness.stallAfter)
        if c.liveness.stallAfter < .seconds(1) { throw source.problem("liveness.stall_after", "must be at least 1s") }
        return c
    }

    private static func filterRule(_ source: ConfigSource, _ k: String) throws(WeirError) -> FilterRule {
        guard let match = source.string("\(k).match") else { throw source.problem("\(k).match", "is required (a device/metric glob such as */temp)") }
        var rule = FilterRule(match: match)
        let min = try double(source, "\(k).range.min")
        let max = try double(source, "\(k).range.max")
        if min != nil || max != nil { rule.range = RangeSpec(min: min, max: max) }
        if source.string("\(k).dedup") != nil {
            rule.dedupWindowMs = try source.duration("\(k).dedup", default: .zero).milliseconds
        }
        let abs = try double(source, "\(k).deadband.abs")
        let percent = try double(source, "\(k).deadband.percent")
        let heartbeat = source.string("\(k).deadband.heartbeat") != nil
            ? try source.duration("\(k).deadband.heartbeat", default: .zero).milliseconds : nil
        if abs != nil || percent != nil || heartbeat != nil {
            rule.deadband = DeadbandSpec(abs: abs, percent: percent, heartbeatMs: heartbeat)
        }
        rule.rateLimitPerSecond = try double(source, "\(k).rate_limit")
        if source.string("\(k).downsample.bucket") == nil, source.string("\(k).downsample.aggregate") != nil {
            // Without a bucket the rule would silently not downsample at all.
            throw source.problem("\(k).downsample.bucket", "is required with downsample.aggregate (e.g. bucket: 10s)")
        }
        if source.string("\(k).downsample.bucket") != nil {
            let bucket = try source.duration("\(k).downsample.bucket", default: .zero).milliseconds
            let aggregate = try source.choice("\(k).downsample.aggregate", DownsampleSpec.Aggregate.allCases.map(\.rawValue), default: "mean")
            rule.downsample = DownsampleSpec(bucketMs: bucket, aggregate: DownsampleSpec.Aggregate(rawValue: aggregate) ?? .mean)
        }
        do { try rule.validate() } catch { throw source.problem(k, error.message) }
        return rule
    }

    private static func double(_ source: ConfigSource, _ key: String) throws(WeirError) -> Double? {
        guard let text = source.string(key) else { return nil }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw source.problem(key, "'\(text.prefix(40))' is not a number")
        }
        return value
    }

    /// List positions in numeric order (`children` sorts them as text).
    private static func indices(_ names: [String]) -> [Int] {
        names.compactMap { Int($0) }.sorted()
    }
}

/// `host:port` as config writes listen addresses.
struct HostPort: Sendable, Hashable {
    var host: String
    var port: Int

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
    }
}
