import WeirCore

/// Everything `weir-cloud serve` can be told, with DESIGN.md's defaults.
///
/// ```swift
/// var config = CloudConfiguration()
/// config.windowSizes = [.seconds(10), .seconds(60)]
/// config.gateways = ["gw-1": GatewayAccess(tokenHash: SHA256.hex("secret-token"))]
/// config.readers = ["dashboard": ReaderAccess(tokenHashes: [SHA256.hex("reader-token")])]
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
    /// Gateway name → its token hashes, devices and rate limit.
    public var gateways: [String: GatewayAccess] = [:]
    /// Reader name → its token hashes and the devices it sees. The query API needs one
    /// (unless `insecureNoAuth`).
    public var readers: [String: ReaderAccess] = [:]
    /// SHA-256 (hex) of the token `GET /metrics` needs from a non-loopback client; `nil`:
    /// `/metrics` answers loopback clients only.
    public var metricsTokenHash: String?
    /// HTTPS (and mutual TLS); `nil` serves plain HTTP.
    public var tls: CloudTLSConfiguration?
    /// The largest request body accepted (compressed), in bytes.
    public var maxBodyBytes: Int = 16 << 20
    /// The largest body after decompression, in bytes.
    public var maxDecodedBytes: Int = 128 << 20
    /// How many batches may wait for the store before new ones get `503` + `Retry-After`.
    public var maxPendingBatches: Int = 64
    /// How often raw readings past `raw_retention` are pruned.
    public var pruneInterval: Duration = .seconds(60)
    /// How long a batch may wait for PostgreSQL before it is answered 503.
    public var storeTimeout: Duration = .seconds(15)
    /// How long the changefeed keeps a change (wall clock since its commit); a cursor older
    /// than what is kept answers `410`.
    public var changesRetention: Duration = .seconds(7 * 86_400)
    /// A silence longer than this many times a series' learned cadence is a gap.
    public var gapFactor: Double = 3
    /// Open mode, for development only: start without any gateway token, accept batches
    /// without a token and answer the query API without a reader token.
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
        if storeTimeout <= .zero { throw WeirError(.badConfig, "config key 'store_timeout' must be positive") }
        if changesRetention <= .zero { throw WeirError(.badConfig, "config key 'changes_retention' must be positive") }
        if !(gapFactor >= 1 && gapFactor <= 1000) { throw WeirError(.badConfig, "config key 'gap_factor' must be between 1 and 1000") }
        if maxPendingBatches <= 0 { throw WeirError(.badConfig, "config key 'max_pending_batches' must be positive") }
        _ = try ListenAddress.parse(listen)
        for (gateway, access) in gateways {
            let key = "gateways.\(gateway).token_sha256"
            if access.tokenHashes.isEmpty { throw WeirError(.badConfig, "config key '\(key)': gateway '\(gateway)' has no token hash") }
            for hash in access.tokenHashes where !hash.isSHA256Hex {
                throw WeirError(.badConfig, "config key '\(key)': expected 64 hex digits (the SHA-256 of the token, e.g. from `printf %s TOKEN | sha256sum`), got '\(hash.prefix(12))...' (\(hash.count) characters)")
            }
            for pattern in access.devices ?? [] {
                do { _ = try DeviceGlob(pattern) } catch {
                    throw WeirError(.badConfig, "config key 'gateways.\(gateway).devices': \(error.message)")
                }
            }
            if access.devices?.isEmpty == true {
                throw WeirError(.badConfig, "config key 'gateways.\(gateway).devices': an empty list allows no device; leave the key out to allow every device")
            }
            if let rate = access.maxReadingsPerSecond, !(rate > 0 && rate.isFinite) {
                throw WeirError(.badConfig, "config key 'gateways.\(gateway).max_readings_per_second': must be a positive number")
            }
        }
        for (reader, access) in readers {
            let key = "readers.\(reader).token_sha256"
            if access.tokenHashes.isEmpty { throw WeirError(.badConfig, "config key '\(key)': reader '\(reader)' has no token hash") }
            for hash in access.tokenHashes where !hash.isSHA256Hex {
                throw WeirError(.badConfig, "config key '\(key)': expected 64 hex digits (the SHA-256 of the token, e.g. from `printf %s TOKEN | sha256sum`), got '\(hash.prefix(12))...' (\(hash.count) characters)")
            }
            for pattern in access.devices {
                do { _ = try DeviceGlob(pattern) } catch {
                    throw WeirError(.badConfig, "config key 'readers.\(reader).devices': \(error.message)")
                }
            }
        }
        // One token must identify one gateway (and one reader); a gateway's token may also
        // be listed as a reader's.
        var gatewayOf: [String: String] = [:]
        for (gateway, access) in gateways.sorted(by: { $0.key < $1.key }) {
            for hash in access.tokenHashes {
                if let other = gatewayOf[hash.lowercased()], other != gateway {
                    throw WeirError(.badConfig, "config key 'gateways.\(gateway).token_sha256': the same token hash is also gateway '\(other)'s; each gateway needs its own token")
                }
                gatewayOf[hash.lowercased()] = gateway
            }
        }
        var readerOf: [String: String] = [:]
        for (reader, access) in readers.sorted(by: { $0.key < $1.key }) {
            for hash in access.tokenHashes {
                if let other = readerOf[hash.lowercased()], other != reader {
                    throw WeirError(.badConfig, "config key 'readers.\(reader).token_sha256': the same token hash is also reader '\(other)'s; each reader needs its own token")
                }
                readerOf[hash.lowercased()] = reader
            }
        }
        if let hash = metricsTokenHash, !hash.isSHA256Hex {
            throw WeirError(.badConfig, "config key 'metrics_token_sha256': expected 64 hex digits (the SHA-256 of the token), got \(hash.count) characters")
        }
    }
}
