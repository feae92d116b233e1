import WeirCore

/// What one gateway may do: the SHA-256 hashes of its bearer tokens (several during a
/// rotation), the devices it may write (`nil`: any) and its ingest rate limit.
///
/// ```swift
/// config.gateways["gw-plant-a"] = GatewayAccess(tokenHashes: [SHA256.hex("old"), SHA256.hex("new")],
///                                               devices: ["plant-a-*"], maxReadingsPerSecond: 50_000)
/// ```
public struct GatewayAccess: Sendable, Equatable {
    /// Lowercase hex SHA-256 of each accepted token.
    public var tokenHashes: [String]
    /// Device patterns (`*`, `?`) this gateway may write; `nil` allows every device.
    public var devices: [String]?
    /// Readings per second (token bucket, one second of burst); `nil` is unlimited.
    public var maxReadingsPerSecond: Double?

    public init(tokenHashes: [String], devices: [String]? = nil, maxReadingsPerSecond: Double? = nil) {
        self.tokenHashes = tokenHashes
        self.devices = devices
        self.maxReadingsPerSecond = maxReadingsPerSecond
    }

    /// A gateway with one token hash that may write any device, unlimited.
    public init(tokenHash: String) {
        self.init(tokenHashes: [tokenHash])
    }
}

/// Who may read: a reader's token hashes and the devices it sees (default every device).
///
/// ```swift
/// config.readers["dashboard"] = ReaderAccess(tokenHashes: [SHA256.hex("reader-token")], devices: ["plant-a-*"])
/// ```
public struct ReaderAccess: Sendable, Equatable {
    /// Lowercase hex SHA-256 of each accepted token.
    public var tokenHashes: [String]
    /// Device patterns (`*`, `?`) this reader sees; other devices answer 404.
    public var devices: [String]

    public init(tokenHashes: [String], devices: [String] = ["*"]) {
        self.tokenHashes = tokenHashes
        self.devices = devices
    }
}

/// `tls:` — serve HTTPS with this certificate and key (PEM); with `clientCAFile`, require
/// a client certificate signed by that CA (mutual TLS).
public struct CloudTLSConfiguration: Sendable, Equatable {
    /// The server's certificate chain (PEM), leaf first.
    public var certFile: String
    /// The server's private key (PEM, unencrypted).
    public var keyFile: String
    /// CA certificate(s) (PEM) that sign gateways' client certificates; `nil`: no client certificates.
    public var clientCAFile: String?

    public init(certFile: String, keyFile: String, clientCAFile: String? = nil) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }
}

extension String {
    /// Whether this is 64 hex digits (a SHA-256 in hex).
    var isSHA256Hex: Bool {
        utf8.count == 64 && utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }
    }
}
