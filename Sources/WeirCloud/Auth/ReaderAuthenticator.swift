import HTTPTypes
import Hummingbird
import WeirCore
import WeirSupport

/// Who is reading: a configured reader (its name and the devices it sees), or anyone
/// under `--insecure-no-auth`.
public struct AuthenticatedReader: Sendable, Equatable {
    /// The reader's name; `nil` in open mode.
    public var name: String?
    /// The devices it sees; others answer 404 as if unknown.
    public var devices: DeviceScope

    public init(name: String?, devices: DeviceScope) {
        self.name = name
        self.devices = devices
    }

    /// Open mode (`--insecure-no-auth`): every device.
    public static let open = AuthenticatedReader(name: nil, devices: .all)
}

/// Checks a reader's `Authorization: Bearer <token>` (or, for the dashboard, a token the
/// caller found elsewhere, e.g. a cookie) against the SHA-256 hashes in `readers:`.
///
/// ```swift
/// let readers = try ReaderAuthenticator(readers: config.readers, insecureNoAuth: false)
/// let reader = try readers.reader(for: request)     // 401 without a reader token
/// reader.devices.allows("plant-a-1")
/// ```
public struct ReaderAuthenticator: Sendable {
    private let readersByHash: [String: AuthenticatedReader]
    /// Open mode: every request reads every device.
    public let insecureNoAuth: Bool

    public init(readers: [String: ReaderAccess], insecureNoAuth: Bool) throws(WeirError) {
        var byHash: [String: AuthenticatedReader] = [:]
        for (name, access) in readers {
            let scope: DeviceScope
            do { scope = try DeviceScope(patterns: access.devices) } catch {
                throw WeirError(.badConfig, "config key 'readers.\(name).devices': \(error.message)")
            }
            for hash in access.tokenHashes { byHash[hash.lowercased()] = AuthenticatedReader(name: name, devices: scope) }
        }
        readersByHash = byHash
        self.insecureNoAuth = insecureNoAuth
    }

    /// The reader of the request's bearer token; throws `401` when it is missing or is no
    /// reader's (a gateway token is not a reader token).
    public func reader(for request: Request) throws -> AuthenticatedReader {
        if insecureNoAuth { return .open }
        return try reader(token: try BearerToken.from(request, expecting: "reader token"))
    }

    /// The reader of `token`; throws `401` when it is `nil` or no reader's.
    public func reader(token: String?) throws -> AuthenticatedReader {
        if insecureNoAuth { return .open }
        guard let token, !token.isEmpty else {
            throw CloudHTTPError(.unauthorized, "the query API needs a reader token (Authorization: Bearer <reader token>; see readers: in the config)")
        }
        guard let reader = readersByHash[SHA256.hex(token)] else {
            throw CloudHTTPError(.unauthorized, "the bearer token matches no configured reader")
        }
        return reader
    }
}
