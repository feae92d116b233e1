import Foundation
import WeirCore
import WeirSupport

extension CloudConfiguration {
    /// Every key `cloud/weir-cloud.yaml` may hold. Each can be overridden by an
    /// environment variable `WEIR_CLOUD_<KEY>` (dots and dashes become `_`), e.g.
    /// `WEIR_CLOUD_LISTEN=0.0.0.0:8080`, `WEIR_CLOUD_WINDOWS=10s,60s`,
    /// `WEIR_CLOUD_GATEWAYS_GW_1_TOKEN_SHA256=...` (for a gateway named in the file).
    ///
    /// - `listen` (`HOST:PORT`, default `127.0.0.1:8080`)
    /// - `store` (`sqlite:PATH`, default `sqlite:./weir-cloud.db`)
    /// - `windows` (list of durations, default `[60s]`)
    /// - `max_out_of_order` (duration, default `5s`)
    /// - `late_policy` (`update` | `drop`, default `update`)
    /// - `allowed_lateness` (duration, default `1h`)
    /// - `raw_retention` (duration, default `7d`)
    /// - `gateways.<name>.token_sha256` (64 hex digits: SHA-256 of the gateway's token, or
    ///   a list of them while a token is rotated)
    /// - `gateways.<name>.devices` (list of device patterns with `*`/`?`; default: any device)
    /// - `gateways.<name>.max_readings_per_second` (number; default unlimited): over it `429`
    /// - `readers.<name>.token_sha256` (hash or list of hashes), `readers.<name>.devices`
    ///   (patterns, default `["*"]`): who may use the query API and which devices it sees
    /// - `metrics_token_sha256` (hash): the token `GET /metrics` needs from a non-loopback
    ///   client (without it `/metrics` answers loopback clients only)
    /// - `tls.cert_file`, `tls.key_file` (PEM): serve HTTPS; `tls.client_ca_file` (PEM):
    ///   require gateways' client certificates signed by this CA (mutual TLS)
    /// - `max_body` (size, default `16MiB`): larger request bodies get `413`
    /// - `max_decoded_body` (size, default `128MiB`): limit after decompression
    /// - `max_pending_batches` (default `64`): more waiting batches get `503` + `Retry-After`
    /// - `prune_interval` (duration, default `60s`): how often old raw readings are pruned
    /// - `store_timeout` (duration, default `15s`): PostgreSQL only; a batch waiting longer for
    ///   the database (down, locked) is answered `503` and the sender resends it
    /// - `changes_retention` (duration, default `7d`): how long the changefeed keeps a change
    /// - `gap_factor` (number, default `3`): a silence longer than this × a series' cadence is a gap
    public static let knownKeys = [
        "listen", "store", "windows", "max_out_of_order", "late_policy", "allowed_lateness",
        "raw_retention", "gateways.*.token_sha256", "gateways.*.devices", "gateways.*.max_readings_per_second",
        "readers.*.token_sha256", "readers.*.devices", "metrics_token_sha256",
        "tls.cert_file", "tls.key_file", "tls.client_ca_file",
        "max_body", "max_decoded_body", "max_pending_batches", "prune_interval", "store_timeout",
        "changes_retention", "gap_factor",
    ]

    /// Reads the configuration from `source`; a bad value throws naming its key.
    public static func load(from source: ConfigSource) throws(WeirError) -> CloudConfiguration {
        try source.rejectUnknownKeys(allowed: knownKeys)
        var config = CloudConfiguration()
        config.listen = source.string("listen", default: config.listen)
        config.store = source.string("store", default: config.store)
        config.windowSizes = try source.durations("windows", default: config.windowSizes)
        config.maxOutOfOrder = try source.duration("max_out_of_order", default: config.maxOutOfOrder)
        let policy = try source.choice("late_policy", ["update", "drop"], default: config.latePolicy.rawValue)
        config.latePolicy = LatePolicy(rawValue: policy) ?? .update
        config.allowedLateness = try source.duration("allowed_lateness", default: config.allowedLateness)
        config.rawRetention = try source.duration("raw_retention", default: config.rawRetention)
        config.maxBodyBytes = Int(try source.byteSize("max_body", default: Int64(config.maxBodyBytes)))
        config.maxDecodedBytes = Int(try source.byteSize("max_decoded_body", default: Int64(max(config.maxDecodedBytes, config.maxBodyBytes))))
        config.maxPendingBatches = try source.int("max_pending_batches", default: config.maxPendingBatches)
        config.pruneInterval = try source.duration("prune_interval", default: config.pruneInterval)
        config.storeTimeout = try source.duration("store_timeout", default: config.storeTimeout)
        config.changesRetention = try source.duration("changes_retention", default: config.changesRetention)
        if let factor = source.string("gap_factor") {
            guard let value = Double(factor) else { throw source.problem("gap_factor", "expected a number such as 3, got '\(factor.prefix(40))'") }
            config.gapFactor = value
        }
        for gateway in source.children(of: "gateways") {
            let key = "gateways.\(gateway).token_sha256"
            guard let hashes = source.list(key), !hashes.isEmpty else {
                throw source.problem(key, "gateway '\(gateway)' has no token_sha256")
            }
            var access = GatewayAccess(tokenHashes: hashes.map { $0.lowercased() })
            access.devices = source.list("gateways.\(gateway).devices")
            let rateKey = "gateways.\(gateway).max_readings_per_second"
            if let text = source.string(rateKey) {
                guard let rate = Double(text.trimmingCharacters(in: .whitespaces)), rate > 0, rate.isFinite else {
                    throw source.problem(rateKey, "'\(text.prefix(40))' is not a positive number of readings per second")
                }
                access.maxReadingsPerSecond = rate
            }
            config.gateways[gateway] = access
        }
        for reader in source.children(of: "readers") {
            let key = "readers.\(reader).token_sha256"
            guard let hashes = source.list(key), !hashes.isEmpty else {
                throw source.problem(key, "reader '\(reader)' has no token_sha256")
            }
            config.readers[reader] = ReaderAccess(tokenHashes: hashes.map { $0.lowercased() },
                                                  devices: source.list("readers.\(reader).devices") ?? ["*"])
        }
        config.metricsTokenHash = source.string("metrics_token_sha256")?.lowercased()
        let certFile = source.string("tls.cert_file")
        let keyFile = source.string("tls.key_file")
        let clientCA = source.string("tls.client_ca_file")
        switch (certFile, keyFile) {
        case (let cert?, let key?):
            config.tls = CloudTLSConfiguration(certFile: cert, keyFile: key, clientCAFile: clientCA)
        case (nil, nil):
            if clientCA != nil { throw source.problem("tls.client_ca_file", "needs tls.cert_file and tls.key_file (mutual TLS is part of HTTPS)") }
        case (nil, _):
            throw source.problem("tls.cert_file", "tls.key_file is set but tls.cert_file is not; HTTPS needs both")
        case (_, nil):
            throw source.problem("tls.key_file", "tls.cert_file is set but tls.key_file is not; HTTPS needs both")
        }
        do {
            try config.validate()
        } catch {
            throw WeirError(.badConfig, "\(error.message)\(source.file.map { " (in \($0))" } ?? "")")
        }
        return config
    }
}
