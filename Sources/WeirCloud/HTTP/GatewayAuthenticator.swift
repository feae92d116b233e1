import HTTPTypes
import Hummingbird
import WeirSupport

/// Checks `Authorization: Bearer <token>` against the SHA-256 hashes of the configured
/// gateway tokens; the config never holds the tokens themselves.
public struct GatewayAuthenticator: Sendable {
    /// SHA-256 hex → gateway name.
    private let gatewaysByHash: [String: String]
    /// With no tokens and `--insecure-no-auth`, every request passes.
    public let insecureNoAuth: Bool

    public init(gateways: [String: String], insecureNoAuth: Bool) {
        var byHash: [String: String] = [:]
        for (gateway, hash) in gateways { byHash[hash.lowercased()] = gateway }
        gatewaysByHash = byHash
        self.insecureNoAuth = insecureNoAuth
    }

    /// The gateway the request's token belongs to, `nil` under `--insecure-no-auth`
    /// without a token; throws `401` for a missing or unknown token.
    public func gateway(for request: Request) throws -> String? {
        guard let header = request.headers[.authorization] else {
            if insecureNoAuth { return nil }
            throw CloudHTTPError(.unauthorized, "missing Authorization header (expected 'Bearer <gateway token>')")
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            if insecureNoAuth { return nil }
            throw CloudHTTPError(.unauthorized, "Authorization header is not 'Bearer <gateway token>'")
        }
        let hash = SHA256.hex(String(parts[1]).trimmingSpaces())
        if let gateway = gatewaysByHash[hash] { return gateway }
        if insecureNoAuth { return nil }
        throw CloudHTTPError(.unauthorized, "the bearer token matches no configured gateway")
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
