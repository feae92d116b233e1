import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals
import WeirCore
import WeirSupport

/// Builds and runs weir-cloud: the HTTP API over a ``ReadingStore``.
///
/// ```swift
/// let config = try CloudConfiguration.load(from: source)
/// try await CloudApplication.serve(config: config, logger: logger)   // until SIGTERM
/// ```
///
/// Tests build the Hummingbird application directly with ``makeApplication(config:store:logger:onListening:)``.
public enum CloudApplication {
    /// The router with every route of DESIGN.md.
    public static func makeRouter(config: CloudConfiguration, store: any ReadingStore) -> Router<BasicRequestContext> {
        PrometheusExport.bootstrap()
        let ingest = BatchIngest(store: store, config: config)
        var queryAPI = QueryAPI(store: store, windowSizesMs: config.windowSizesMs, maxOutOfOrderMs: config.maxOutOfOrder.milliseconds)
        if let continuity = store as? any ContinuitySource {
            queryAPI.continuity = continuity
            queryAPI.recent = RecentActivityCache(source: continuity)
            queryAPI.gapFactor = config.gapFactor
        }
        let query = queryAPI
        let router = Router()
        router.post("/v1/batches") { request, context in
            try await ingest.handle(request, context: context)
        }
        router.get("/v1/devices") { request, context in
            try await query.devices(request, context: context)
        }
        router.get("/v1/devices/:device/windows") { request, context in
            try await query.windows(request, context: context)
        }
        if let feed = store as? any ChangeFeedSource {
            let changes = ChangeFeedAPI(feed: feed)
            router.get("/v1/changes") { request, context in
                try await changes.changes(request, context: context)
            }
        }
        router.get("/v1/devices/:device/gaps") { request, context in
            try await query.gaps(request, context: context)
        }
        if let continuity = store as? any ContinuitySource, let source = store as? any DashboardSource,
           let feed = store as? any ChangeFeedSource, let recent = query.recent {
            let dashboard = Dashboard(store: store, continuity: continuity, source: source, feed: feed, recent: recent,
                                      windowSizesMs: config.windowSizesMs, maxOutOfOrderMs: config.maxOutOfOrder.milliseconds,
                                      gapFactor: config.gapFactor)
            router.addRoutes(dashboard.routes())
        }
        router.get("/healthz") { _, _ in
            // 503 with the reason when the store cannot commit or fold (DESIGN.md).
            let health = store.health()
            return CloudJSON.response(health, status: health.isHealthy ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = PrometheusExport.contentType
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: PrometheusExport.render())))
        }
        return router
    }

    /// The Hummingbird application; `onListening` gets the bound address once the server runs.
    public static func makeApplication(
        config: CloudConfiguration,
        store: any ReadingStore,
        logger: Logger,
        services: [any Service] = [],
        onListening: @escaping @Sendable (ListenAddress) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let address = try ListenAddress.parse(config.listen)
        return Application(
            router: makeRouter(config: config, store: store),
            server: .http1(configuration: .init(additionalChannelHandlers: [LingeringCloseHandler()])),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "weir-cloud"),
            services: services,
            onServerRunning: { channel in
                let bound = channel.localAddress
                await onListening(ListenAddress(host: bound?.ipAddress ?? address.host, port: bound?.port ?? address.port))
            },
            logger: logger
        )
    }

    /// Opens the store named by `config.store`.
    public static func openStore(config: CloudConfiguration, logger: Logger) throws -> any ReadingStore {
        switch try StoreLocation.parse(config.store) {
        case .sqlite(let path):
            // The pruner folds an idle store every prune_interval; a batch waiting much longer is a fold behind.
            return try SQLiteReadingStore(path: path, settings: ReconcileSettings(config), logger: logger,
                                          maxUnfoldedAge: max(.seconds(300), config.pruneInterval * 5),
                                          changesRetention: config.changesRetention)
        case .postgres:
            throw WeirError(.badConfig, "store postgres:// is not available in this build yet; use sqlite:PATH")
        }
    }

    /// Runs weir-cloud until SIGTERM or SIGINT: refuses to start without gateway tokens
    /// unless `insecureNoAuth`, opens the store, serves HTTP, prunes raw readings, and on
    /// shutdown lets in-flight batches finish (each commits whole or not at all) before
    /// closing the store. Prints `weir-cloud listening on HOST:PORT` once bound.
    public static func serve(config: CloudConfiguration, logger: Logger) async throws {
        try config.validate()
        if config.gateways.isEmpty && !config.insecureNoAuth {
            throw WeirError(.badConfig, "no gateway tokens configured (gateways.<name>.token_sha256); refusing to start without authentication (pass --insecure-no-auth for development)")
        }
        if config.insecureNoAuth {
            logger.warning("running with --insecure-no-auth: batches are accepted without a token")
        }
        let store = try openStore(config: config, logger: logger)
        let pruner = RetentionPruner(store: store, interval: config.pruneInterval, clock: ContinuousClock(), logger: logger)
        let app = try makeApplication(config: config, store: store, logger: logger) { address in
            // One line on stdout, flushed: test harnesses wait for it to learn the port.
            FileHandle.standardOutput.write(Data("weir-cloud listening on \(address)\n".utf8))
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: pruner), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
        logger.info("weir-cloud stopped")
    }
}

extension CloudApplication {
    /// What `weir-cloud serve` does: loads the config file (if any) with `WEIR_CLOUD_*`
    /// environment overrides, applies the flags on top, and serves. Log level from
    /// `LOG_LEVEL` (default `info`).
    public static func serve(configFile: String?, listen: String?, store: String?, insecureNoAuth: Bool) async throws {
        var logger = Logger(label: "weir.cloud")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let source = try await ConfigSource.load(file: configFile, environmentPrefix: "WEIR_CLOUD")
        var config = try CloudConfiguration.load(from: source)
        if let listen { config.listen = listen }
        if let store { config.store = store }
        config.insecureNoAuth = insecureNoAuth
        try await serve(config: config, logger: logger)
    }
}
