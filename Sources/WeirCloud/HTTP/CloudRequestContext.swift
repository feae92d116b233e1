import Hummingbird
import NIOCore

/// A request context that carries the reader a ``ReaderAuthMiddleware`` authenticated.
/// The query API, the changefeed and the dashboard read `reader` to decide which devices
/// exist for the caller.
public protocol ReaderRequestContext: RequestContext {
    /// Set by ``ReaderAuthMiddleware``; `nil` on routes without it.
    var reader: AuthenticatedReader? { get set }
}

/// weir-cloud's request context: Hummingbird's core storage, the connection's channel
/// (for the peer address and its TLS client certificate) and the authenticated reader.
public struct CloudRequestContext: ReaderRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var reader: AuthenticatedReader?
    /// The connection the request came on.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Whether the client connects from a loopback address. In-process tests have no
    /// socket and no remote address; they count as local.
    public var isLoopbackClient: Bool {
        guard let address = channel.remoteAddress else { return true }
        switch address {
        case .v4:
            return address.ipAddress?.hasPrefix("127.") ?? false
        case .v6:
            let ip = address.ipAddress ?? ""
            return ip == "::1" || ip.hasPrefix("::ffff:127.")
        case .unixDomainSocket:
            return true
        }
    }
}
