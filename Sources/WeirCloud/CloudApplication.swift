import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import HummingbirdCore
import HummingbirdTLS
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
    /// The router with every route of DESIGN.md: `POST /v1/batches` (gateway tokens),
    /// `GET /v1/...` behind ``ReaderAuthMiddleware`` (reader tokens), `/healthz` open,
    /// `/metrics` for loopback clients or with `metrics_token_sha256`.
    public static func makeRouter(config: CloudConfiguration, store: any ReadingStore) throws -> Router<CloudRequestContext> {
        PrometheusExport.bootstrap()
        let ingest = try BatchIngest(store: store, config: config)
        var queryAPI = QueryAPI(store: store, windowSizesMs: config.windowSizesMs, maxOutOfOrderMs: config.maxOutOfOrder.milliseconds)
        if let continuity = store as? any ContinuitySource {
            queryAPI.continuity = continuity
            queryAPI.recent = RecentActivityCache(source: continuity)
            queryAPI.gapFactor = config.gapFactor
        }
        let query = queryAPI
        let readers = try ReaderAuthenticator(readers: config.readers, insecureNoAuth: config.insecureNoAuth)
        let router = Router(context: CloudRequestContext.self)
        router.post("/v1/batches") { request, context in
            try await ingest.handle(request, context: context)
        }
        let reads = router.group().add(middleware: ReaderAuthMiddleware<CloudRequestContext>(authenticator: readers))
        reads.get("/v1/devices") { request, context in
            try await query.devices(request, context: context)
        }
        reads.get("/v1/devices/:device/windows") { request, context in
            try await query.windows(request, context: context)
        }
        if let feed = store as? any ChangeFeedSource {
            let changes = ChangeFeedAPI(feed: feed)
            reads.get("/v1/changes") { request, context in
                try await changes.changes(request, context: context)
            }
        } else {
            reads.get("/v1/changes") { _, _ -> Response in throw CloudHTTPError(.notImplemented, sqliteOnly("the changefeed")) }
        }
        reads.get("/v1/devices/:device/gaps") { request, context in
            try await query.gaps(request, context: context)
        }
        if let continuity = store as? any ContinuitySource, let source = store as? any DashboardSource,
           let feed = store as? any ChangeFeedSource, let recent = query.recent {
            let dashboard = Dashboard(store: store, continuity: continuity, source: source, feed: feed, recent: recent,
                                      windowSizesMs: config.windowSizesMs, maxOutOfOrderMs: config.maxOutOfOrder.milliseconds,
                                      gapFactor: config.gapFactor)
            reads.addRoutes(dashboard.routes())
        } else {
            for path in ["/", "/devices/:device"] {
                reads.get(RouterPath(path)) { _, _ -> Response in throw CloudHTTPError(.notImplemented, sqliteOnly("the dashboard")) }
            }
        }
        router.get("/healthz") { _, _ in
            // 503 with the reason when the store cannot commit or fold (DESIGN.md).
            let health = store.health()
            return CloudJSON.response(health, status: health.isHealthy ? .ok : .serviceUnavailable)
        }
        let metricsTokenHash = config.metricsTokenHash
        router.addRoutes(PrometheusExport.routes(context: CloudRequestContext.self) { request, context in
            try checkMetricsAccess(request, context: context, tokenHash: metricsTokenHash)
        })
        return router
    }

    /// Why a store without the changefeed and continuity (PostgreSQL) answers 501 for `what`.
    static func sqliteOnly(_ what: String) -> String {
        "\(what) is served only by a weir-cloud on an SQLite store so far; this one runs on PostgreSQL (windows and devices are served)"
    }

    /// `/metrics`: with `metrics_token_sha256`, that bearer token (from anywhere);
    /// without it, loopback clients only.
    static func checkMetricsAccess(_ request: Request, context: CloudRequestContext, tokenHash: String?) throws {
        guard let tokenHash else {
            guard context.isLoopbackClient else {
                throw CloudHTTPError(.forbidden, "/metrics answers loopback clients only; set metrics_token_sha256 to scrape it from elsewhere")
            }
            return
        }
        guard let token = try BearerToken.from(request, expecting: "metrics token") else {
            throw CloudHTTPError(.unauthorized, "/metrics needs the metrics token (Authorization: Bearer <token>)")
        }
        guard SHA256.hex(token) == tokenHash else {
            throw CloudHTTPError(.unauthorized, "the bearer token is not the metrics token")
        }
    }

    /// The Hummingbird application; `onListening` gets the bound address once the server
    /// runs. With `config.tls` it serves HTTPS from `tls` (loaded from the config's files
    /// when not given).
    public static func makeApplication(
        config: CloudConfiguration,
        store: any ReadingStore,
        logger: Logger,
        tls: CloudTLSCredentials? = nil,
        services: [any Service] = [],
        onListening: @escaping @Sendable (ListenAddress) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let address = try ListenAddress.parse(config.listen)
        let http1 = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [LingeringCloseHandler()]))
        var server = http1
        if let files = config.tls {
            let credentials = try tls ?? CloudTLSCredentials(files: files)
            server = try .tls(http1, tlsConfiguration: credentials.serverConfiguration())
        }
        return Application(
            router: try makeRouter(config: config, store: store),
            server: server,
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
    public static func openStore(config: CloudConfiguration, logger: Logger) async throws -> any ReadingStore {
        switch try StoreLocation.parse(config.store) {
        case .sqlite(let path):
            // The pruner folds an idle store every prune_interval; a batch waiting much longer is a fold behind.
            return try SQLiteReadingStore(path: path, settings: ReconcileSettings(config), logger: logger,
                                          maxUnfoldedAge: max(.seconds(300), config.pruneInterval * 5),
                                          changesRetention: config.changesRetention)
        case .postgres(let url):
            return try await PostgresReadingStore.open(url: url, settings: ReconcileSettings(config), logger: logger,
                                                       batchTimeout: config.storeTimeout)
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
            logger.warning("running with --insecure-no-auth: batches are accepted without a token and the query API answers anyone")
        } else if config.readers.isEmpty {
            logger.warning("no readers configured (readers.<name>.token_sha256): the query API answers 401 to everyone")
        }
        let listen = try ListenAddress.parse(config.listen)
        if config.tls == nil && !listen.isLoopback {
            logger.warning("listening on \(listen) without TLS: gateway and reader tokens cross the network in clear text; set tls.cert_file and tls.key_file")
        }
        // Files first: a bad certificate path fails before the store is opened.
        let credentials = try config.tls.map { files throws(WeirError) in try CloudTLSCredentials(files: files) }
        let store = try await openStore(config: config, logger: logger)
        let pruner = RetentionPruner(store: store, interval: config.pruneInterval, clock: ContinuousClock(), logger: logger)
        let scheme = credentials == nil ? "http" : "https"
        let app = try makeApplication(config: config, store: store, logger: logger, tls: credentials) { address in
            // One line on stdout, flushed: test harnesses wait for it to learn the port.
            FileHandle.standardOutput.write(Data("weir-cloud listening on \(address) (\(scheme))\n".utf8))
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: pruner)]
        if let credentials {
            logger.info("serving HTTPS", metadata: [
                "weir.cert_file": "\(credentials.files.certFile)", "weir.serial": "\(credentials.servedSerial)",
                "weir.mutual_tls": "\(credentials.requiresClientCertificates)",
            ])
            services.append(.init(service: TLSReloadService(credentials: credentials, logger: logger)))
        }
        services.append(.init(service: app))
        let group = ServiceGroup(configuration: .init(
            services: services,
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
        let source = try ConfigSource.load(file: configFile, environmentPrefix: "WEIR_CLOUD")
        var config = try CloudConfiguration.load(from: source)
        if let listen { config.listen = listen }
        if let store { config.store = store }
        config.insecureNoAuth = insecureNoAuth
        try await serve(config: config, logger: logger)
    }
}
