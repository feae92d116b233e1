import WeirCore

/// Everything `weir-cloud serve` can be told, with DESIGN.md's defaults.
///
/// ```swift
/// var config = CloudConfiguration()
/// config.windowSizes = [.seconds(10), .seconds(60)]
/// config.gateways = ["gw-1": SHA256.hex("secret-token")]
/// ```
///
/// Loaded from YAML with environment overrides by ``CloudConfiguration/load(from:)``.
public struct CloudConfiguration: Sendable, Equatable {
    /// What to do with a reading for a window that is already closed.
    public enum LatePolicy: String, Sendable, Equatable {
        /// Apply it; the window's `revision` and `late` grow.
        case update
        /// Apply it while within `allowed_lateness`; past that, record it in the audit
        /// table and do not apply it.
        case drop
    }

    /// `HOST:PORT` to listen on; port `0` picks a free port.
    public var listen: String = "127.0.0.1:8080"
    /// Where readings are stored, e.g. `sqlite:./weir-cloud.db`.
    public var store: String = "sqlite:./weir-cloud.db"
    /// Tumbling window sizes, each aligned to the epoch.
    public var windowSizes: [Duration] = [.seconds(60)]
    /// How far behind the newest reading of a device its watermark stays.
    public var maxOutOfOrder: Duration = .seconds(5)
    public var latePolicy: LatePolicy = .update
    /// Under `late_policy: drop`, how late a reading may be and still be applied.
    public var allowedLateness: Duration = .seconds(3600)
    /// How long raw readings are kept for deduplication, in event time behind the
    /// device's newest reading; older readings are rejected as too late.
    public var rawRetention: Duration = .seconds(7 * 86_400)
    /// Gateway name → SHA-256 (hex) of its bearer token.
    public var gateways: [String: String] = [:]
    /// The largest request body accepted (compressed), in bytes.
    public var maxBodyBytes: Int = 16 << 20
    /// The largest body after decompression, in bytes.
    public var maxDecodedBytes: Int = 128 << 20
    /// How many batches may wait for the store before new ones get `503` + `Retry-After`.
    public var maxPendingBatches: Int = 64
    /// How often raw readings past `raw_retention` are pruned.
    public var pruneInterval: Duration = .seconds(60)
    /// How long the changefeed keeps a change (wall clock since its commit); a cursor older
    /// than what is kept answers `410`.
    public var changesRetention: Duration = .seconds(7 * 86_400)
    /// A silence longer than this many times a series' learned cadence is a gap.
    public var gapFactor: Double = 3
    /// Start without any gateway token (every request is accepted). For development only.
    public var insecureNoAuth: Bool = false

    public init() {}

    /// Window sizes in milliseconds.
    public var windowSizesMs: [Int64] { windowSizes.map(\.milliseconds) }

    /// Checks values that no type can rule out; throws naming the key.
    public func validate() throws(WeirError) {
        if windowSizes.isEmpty { throw WeirError(.badConfig, "config key 'windows': at least one window size is needed") }
        for size in windowSizes where size.milliseconds <= 0 {
            throw WeirError(.badConfig, "config key 'windows': sizes must be at least 1ms, got \(DurationText.format(size))")
        }
        if Set(windowSizesMs).count != windowSizes.count {
            throw WeirError(.badConfig, "config key 'windows': a size is listed twice")
        }
        if maxOutOfOrder < .zero { throw WeirError(.badConfig, "config key 'max_out_of_order' must not be negative") }
        if allowedLateness < .zero { throw WeirError(.badConfig, "config key 'allowed_lateness' must not be negative") }
        if rawRetention <= .zero { throw WeirError(.badConfig, "config key 'raw_retention' must be positive") }
        if maxBodyBytes <= 0 { throw WeirError(.badConfig, "config key 'max_body' must be positive") }
        if maxDecodedBytes < maxBodyBytes {
            throw WeirError(.badConfig, "config key 'max_decoded_body' must be at least max_body")
        }
        if pruneInterval <= .zero { throw WeirError(.badConfig, "config key 'prune_interval' must be positive") }
        if changesRetention <= .zero { throw WeirError(.badConfig, "config key 'changes_retention' must be positive") }
        if !(gapFactor >= 1 && gapFactor <= 1000) { throw WeirError(.badConfig, "config key 'gap_factor' must be between 1 and 1000") }
        if maxPendingBatches <= 0 { throw WeirError(.badConfig, "config key 'max_pending_batches' must be positive") }
        _ = try ListenAddress.parse(listen)
        for (gateway, hash) in gateways {
            let ok = hash.utf8.count == 64 && hash.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }
            if !ok {
                throw WeirError(.badConfig, "config key 'gateways.\(gateway).token_sha256': expected 64 hex digits (the SHA-256 of the token, e.g. from `printf %s TOKEN | sha256sum`)")
            }
        }
    }
}
