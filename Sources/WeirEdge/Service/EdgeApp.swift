import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import WeirCore
import WeirMQTT
import WeirSupport

/// `weir-edge run`: opens the buffer, then runs the ingest, sealer, uplink and metrics
/// services in one `ServiceGroup` until SIGTERM/SIGINT, which stops ingest first (it
/// drains and seals what it holds), then the others.
///
/// ```swift
/// let config = try EdgeConfiguration.load(file: "edge/weir-edge.yaml")
/// try await EdgeApp(configuration: config).run()
/// ```
public struct EdgeApp: Sendable {
    public let configuration: EdgeConfiguration
    public let logger: Logger

    public init(configuration: EdgeConfiguration, logger: Logger? = nil) {
        self.configuration = configuration
        var log = logger ?? Logger(label: "weir-edge")
        if logger == nil { log.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info }
        self.logger = log
    }

    /// Runs until a graceful shutdown; throws start-up errors (a bad buffer file, a
    /// metrics port in use) before anything runs.
    public func run() async throws {
        let c = configuration
        PrometheusExport.bootstrap()
        let buffer = try EdgeBuffer.open(path: c.buffer.path, gateway: c.gateway)
        let endpoint = try MQTTURL.check(c.mqtt.url)
        var mqtt = MQTTConfiguration(host: endpoint.host, port: endpoint.port, clientID: c.mqttClientID, cleanSession: false,
                                     username: c.mqtt.username ?? endpoint.username, password: c.mqtt.password ?? endpoint.password,
                                     caFile: c.mqtt.caFile, keepAlive: Int(c.mqtt.keepAlive.milliseconds / 1000),
                                     inboundCapacity: c.mqtt.inboundCapacity, connectTimeout: .seconds(10))
        if endpoint.tls && mqtt.caFile == nil {
            throw WeirError(.badConfig, "config key 'mqtt.url': \(c.mqtt.url) asks for TLS; set mqtt.ca_file too")
        }
        mqtt.reconnectDelayMax = 30
        let client = try MQTTClient(configuration: mqtt, logger: logger)
        let metrics = EdgeMetrics()
        let inFlight = InFlightChunks()
        let sealer = ChunkSealer(buffer: buffer, configuration: c, inFlight: inFlight, metrics: metrics, logger: logger)
        if let status = try? buffer.status() { metrics.recordStatus(status) }

        let health = EdgeHealth()
        let uplinkBeat = LoopHeartbeat()
        let notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment)

        // Started in this order, stopped in the reverse: ingest stops first, the liveness
        // monitor last (it says STOPPING=1 and records `stopped`).
        var services: [any Service] = [
            LivenessMonitor(check: LivenessCheck(limit: c.liveness.stallAfter), client: client, uplink: uplinkBeat, health: health,
                            buffer: buffer, metrics: metrics, notifier: notifier, logger: logger),
        ]
        if let listen = c.metrics.listen, let hostPort = HostPort(listen) {
            services.append(MetricsServer.make(host: hostPort.host, port: hostPort.port, health: health, logger: logger))
        }
        services.append(UplinkService(configuration: c, buffer: buffer, inFlight: inFlight, metrics: metrics, heartbeat: uplinkBeat, logger: logger))
        services.append(SealerService(interval: c.buffer.flushInterval, sealer: sealer, metrics: metrics, logger: logger))
        let gateway = c.gateway
        let summary = "gateway \(gateway), broker \(c.mqtt.url), buffer \(c.buffer.path), uplink \(c.uplink.url)"
        services.append(IngestService(configuration: c, client: client, sealer: sealer, logger: logger, onReady: {
            health.markSubscribed()
            notifier?.send("READY=1\nSTATUS=running")
            Console.line("weir-edge running (\(summary))")
        }))
        let group = ServiceGroup(configuration: .init(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger))
        try await group.run()
        Console.line("weir-edge stopped")
    }
}

/// Unbuffered lines on stdout (tests and supervisors wait for the ready line).
public enum Console {
    public static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}
