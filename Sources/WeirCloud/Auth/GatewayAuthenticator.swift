import HTTPTypes
import Hummingbird
import WeirCore
import WeirSupport

/// Checks `Authorization: Bearer <token>` against the SHA-256 hashes of the configured
/// gateway tokens (the config never holds the tokens themselves) and says what the
/// gateway may do.
public struct GatewayAuthenticator: Sendable {
    /// A gateway the token identified.
    public struct Gateway: Sendable {
        public var name: String
        /// The devices it may write.
        public var devices: DeviceScope
        /// Readings per second, `nil` unlimited.
        public var maxReadingsPerSecond: Double?
    }

    /// SHA-256 hex → gateway.
    private let gatewaysByHash: [String: Gateway]
    /// Under `--insecure-no-auth`, a request without a (known) token passes too.
    public let insecureNoAuth: Bool

    public init(gateways: [String: GatewayAccess], insecureNoAuth: Bool) throws(WeirError) {
        var byHash: [String: Gateway] = [:]
        for (name, access) in gateways {
            let scope: DeviceScope
            do { scope = try DeviceScope(patterns: access.devices) } catch {
                throw WeirError(.badConfig, "config key 'gateways.\(name).devices': \(error.message)")
            }
            for hash in access.tokenHashes {
                byHash[hash.lowercased()] = Gateway(name: name, devices: scope, maxReadingsPerSecond: access.maxReadingsPerSecond)
            }
        }
        gatewaysByHash = byHash
        self.insecureNoAuth = insecureNoAuth
    }

    /// The gateway the request's token belongs to, `nil` under `--insecure-no-auth`
    /// without a known token; throws `401` for a missing or unknown token.
    public func gateway(for request: Request) throws -> Gateway? {
        let token: String?
        do {
            token = try BearerToken.from(request, expecting: "gateway token")
        } catch {
            if insecureNoAuth { return nil }
            throw error
        }
        guard let token else {
            if insecureNoAuth { return nil }
            throw CloudHTTPError(.unauthorized, "missing Authorization header (expected 'Bearer <gateway token>')")
        }
        if let gateway = gatewaysByHash[SHA256.hex(token)] { return gateway }
        if insecureNoAuth { return nil }
        throw CloudHTTPError(.unauthorized, "the bearer token matches no configured gateway")
    }
}
