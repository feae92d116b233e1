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
    /// - `gateways.<name>.token_sha256` (64 hex digits: SHA-256 of the gateway's token)
    /// - `max_body` (size, default `16MiB`): larger request bodies get `413`
    /// - `max_decoded_body` (size, default `128MiB`): limit after decompression
    /// - `max_pending_batches` (default `64`): more waiting batches get `503` + `Retry-After`
    /// - `prune_interval` (duration, default `60s`): how often old raw readings are pruned
    /// - `changes_retention` (duration, default `7d`): how long the changefeed keeps a change
    /// - `gap_factor` (number, default `3`): a silence longer than this × a series' cadence is a gap
    public static let knownKeys = [
        "listen", "store", "windows", "max_out_of_order", "late_policy", "allowed_lateness",
        "raw_retention", "gateways.*.token_sha256", "max_body", "max_decoded_body",
        "max_pending_batches", "prune_interval", "changes_retention", "gap_factor",
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
        config.changesRetention = try source.duration("changes_retention", default: config.changesRetention)
        if let factor = source.string("gap_factor") {
            guard let value = Double(factor) else { throw source.problem("gap_factor", "expected a number such as 3, got '\(factor.prefix(40))'") }
            config.gapFactor = value
        }
        for gateway in source.children(of: "gateways") {
            let key = "gateways.\(gateway).token_sha256"
            guard let hash = source.string(key) else {
                throw source.problem(key, "gateway '\(gateway)' has no token_sha256")
            }
            config.gateways[gateway] = hash.lowercased()
        }
        do {
            try config.validate()
        } catch {
            throw WeirError(.badConfig, "\(error.message)\(source.file.map { " (in \($0))" } ?? "")")
        }
        return config
    }
}
