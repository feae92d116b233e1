import Logging
import NIOCore
import NIOPosix
import Synchronization
import WeirCore

/// A TCP proxy whose link can be cut and restored — by a `LinkSchedule`, or by calling
/// `setLink(up:)` — with optional latency and a bandwidth cap. It sits between weir-edge
/// and weir-cloud to make outages happen on purpose.
///
/// While the link is down, in `refuse` mode (the default) every open connection is reset
/// and new ones are accepted and closed at once, as a cloud that is unreachable looks to
/// the edge; in `hold` mode connections stay open but nothing moves (a black hole, which
/// the edge only notices by its timeouts), and new ones wait to be connected until the
/// link is back.
///
/// ```swift
/// let proxy = LinkProxy(configuration: .init(listenHost: "127.0.0.1", listenPort: 0,
///                                            upstreamHost: "127.0.0.1", upstreamPort: 8080))
/// let port = try await proxy.start()
/// proxy.setLink(up: false, reason: "test")   // the edge now sees the cloud as gone
/// proxy.setLink(up: true, reason: "test")
/// try await proxy.stop()
/// ```
public final class LinkProxy: Sendable {
    /// What a down link does to connections.
    public enum DownMode: String, Sendable, Hashable, CaseIterable {
        /// Reset open connections, accept-and-close new ones.
        case refuse
        /// Keep connections open but forward nothing; connect new ones only when back up.
        case hold
    }

    /// Where to listen, where to forward, and how to shape the link.
    public struct Configuration: Sendable, Hashable {
        public var listenHost: String
        /// 0 picks a free port (see `start()`'s result).
        public var listenPort: Int
        public var upstreamHost: String
        public var upstreamPort: Int
        /// Added to every chunk of data, each direction.
        public var latency: Duration
        /// Bytes per second, each direction; `nil` for no cap.
        public var bandwidth: Int?
        public var downMode: DownMode

        public init(listenHost: String, listenPort: Int, upstreamHost: String, upstreamPort: Int,
                    latency: Duration = .zero, bandwidth: Int? = nil, downMode: DownMode = .refuse) {
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.upstreamHost = upstreamHost
            self.upstreamPort = upstreamPort
            self.latency = latency
            self.bandwidth = bandwidth
            self.downMode = downMode
        }
    }

    /// Counters since start.
    public struct Statistics: Sendable, Hashable {
        public var accepted = 0
        public var refused = 0
        public var reset = 0
        public var bytesToUpstream = 0
        public var bytesToClient = 0
        public var transitions = 0
    }

    private struct Connection {
        var client: any Channel
        var upstream: (any Channel)?
    }

    private struct State {
        var up = true
        var nextID = 0
        var connections: [Int: Connection] = [:]
        /// Clients accepted while the link was held down, waiting for it to come back.
        var parked: [Int: any Channel] = [:]
        var server: (any Channel)?
        var statistics = Statistics()
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onTransition: @Sendable (_ up: Bool, _ reason: String, _ connections: Int) -> Void
    private let state = Mutex(State())

    /// `onTransition` hears every change of the link (new state, why, connections affected).
    public init(configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "weir.sim.proxy"),
                onTransition: @escaping @Sendable (_ up: Bool, _ reason: String, _ connections: Int) -> Void = { _, _, _ in }) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.onTransition = onTransition
    }

    /// Whether the link is up now.
    public var isUp: Bool { state.withLock { $0.up } }

    /// Counters since start.
    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Binds the listening socket; returns the port it listens on.
    @discardableResult
    public func start() async throws(WeirError) -> Int {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { [self] channel in
                // Connect upstream only once the client channel is active: before that,
                // turning reads on does not start them.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ActivationHandler { self.accept($0) })
                }
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(host: configuration.listenHost, port: configuration.listenPort).get()
        } catch {
            throw WeirError(.network, "proxy cannot listen on \(configuration.listenHost):\(configuration.listenPort)", cause: error)
        }
        state.withLock { $0.server = server }
        let port = server.localAddress?.port ?? configuration.listenPort
        logger.info("proxy listening", metadata: [
            "weir.listen": "\(configuration.listenHost):\(port)",
            "weir.upstream": "\(configuration.upstreamHost):\(configuration.upstreamPort)",
        ])
        return port
    }

    /// Cuts (`up: false`) or restores the link. Logs the transition; does nothing when the
    /// link is already in that state.
    public func setLink(up: Bool, reason: String) {
        let (changed, toClose, toResume, toConnect): (Bool, [any Channel], [any Channel], [(Int, any Channel)]) = state.withLock { s in
            guard s.up != up else { return (false, [], [], []) }
            s.up = up
            s.statistics.transitions += 1
            if !up {
                switch configuration.downMode {
                case .refuse:
                    let channels = s.connections.values.flatMap { c in [c.client] + (c.upstream.map { [$0] } ?? []) }
                    s.statistics.reset += s.connections.count
                    s.connections = [:]
                    return (true, channels, [], [])
                case .hold:
                    let channels = s.connections.values.flatMap { c in [c.client] + (c.upstream.map { [$0] } ?? []) }
                    return (true, [], channels, [])
                }
            } else {
                let resume = s.connections.values.flatMap { c in [c.client] + (c.upstream.map { [$0] } ?? []) }
                let parked = s.parked.map { ($0.key, $0.value) }
                s.parked = [:]
                return (true, [], configuration.downMode == .hold ? resume : [], parked)
            }
        }
        guard changed else { return }
        let affected = up ? toConnect.count + toResume.count / 2 : (toClose.count + toResume.count) / 2
        logger.notice("link \(up ? "UP" : "DOWN")", metadata: ["weir.reason": "\(reason)", "weir.connections": "\(affected)"])
        onTransition(up, reason, affected)
        for channel in toClose { Self.reset(channel) }
        // In hold mode, `toResume` are the channels to pause (link down) or resume (link up).
        for channel in toResume {
            channel.setOption(.autoRead, value: up).whenComplete { _ in if up { channel.read() } }
        }
        for (id, client) in toConnect {
            client.eventLoop.execute { self.connectUpstream(id: id, client: client) }
        }
    }

    /// Follows `schedule` from now until it ends or the task is cancelled. `onChange` hears
    /// every transition.
    public func follow(_ schedule: LinkSchedule) async {
        for step in schedule.timeline {
            setLink(up: step.up, reason: "schedule")
            guard let duration = step.duration else { return }
            do { try await Task.sleep(for: duration) } catch { return }
        }
    }

    /// Closes the listener and every connection.
    public func stop() async {
        let (server, channels) = state.withLock { s -> ((any Channel)?, [any Channel]) in
            let channels = s.connections.values.flatMap { c in [c.client] + (c.upstream.map { [$0] } ?? []) } + Array(s.parked.values)
            s.connections = [:]
            s.parked = [:]
            let server = s.server
            s.server = nil
            return (server, channels)
        }
        for channel in channels { channel.close(promise: nil) }
        try? await server?.close()
    }

    // MARK: - Connections (on the client channel's event loop)

    private func accept(_ client: any Channel) {
        let (up, id) = state.withLock { s -> (Bool, Int) in
            s.nextID += 1
            if s.up || configuration.downMode == .hold { s.statistics.accepted += 1 } else { s.statistics.refused += 1 }
            return (s.up, s.nextID)
        }
        if !up {
            switch configuration.downMode {
            case .refuse:
                Self.reset(client)
                return
            case .hold:
                let stillDown = state.withLock { s -> Bool in
                    guard !s.up else { return false }
                    s.parked[id] = client
                    return true
                }
                if stillDown {
                    client.closeFuture.whenComplete { [self] _ in _ = state.withLock { $0.parked.removeValue(forKey: id) } }
                    return
                }
            }
        }
        connectUpstream(id: id, client: client)
    }

    private func connectUpstream(id: Int, client: any Channel) {
        let shaping = Shaping(latency: configuration.latency, bandwidth: configuration.bandwidth)
        let proxy = self
        let connect = ClientBootstrap(group: client.eventLoop)
            .connectTimeout(.seconds(5))
            .channelInitializer { upstream in
                do {
                    try upstream.pipeline.syncOperations.addHandler(RelayHandler(peer: client, shaping: shaping, proxy: proxy, toUpstream: false))
                    return upstream.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return upstream.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: configuration.upstreamHost, port: configuration.upstreamPort)
        connect.whenComplete { [self] result in
            switch result {
            case .failure(let error):
                logger.warning("upstream unreachable", metadata: ["weir.error": "\(error)"])
                Self.reset(client)
            case .success(let upstream):
                let registered = state.withLock { s -> Bool in
                    // The link may have gone down while connecting.
                    guard s.up || configuration.downMode == .hold else { return false }
                    s.connections[id] = Connection(client: client, upstream: upstream)
                    return true
                }
                // (The client channel may not be active yet: a loopback connect can finish
                // within the tick that accepted it. Its close future covers both cases.)
                guard registered else {
                    Self.reset(client)
                    upstream.close(promise: nil)
                    return
                }
                do {
                    try client.pipeline.syncOperations.addHandler(RelayHandler(peer: upstream, shaping: shaping, proxy: proxy, toUpstream: true))
                } catch {
                    Self.reset(client)
                    upstream.close(promise: nil)
                    return
                }
                client.closeFuture.whenComplete { [self] _ in
                    _ = state.withLock { $0.connections.removeValue(forKey: id) }
                    upstream.close(promise: nil)
                }
                if isUp || configuration.downMode == .refuse {
                    client.setOption(.autoRead, value: true).whenComplete { _ in client.read() }
                } else {
                    upstream.setOption(.autoRead, value: false).whenComplete { _ in }
                }
            }
        }
    }

    /// Whether data may move now (in hold mode, a down link moves nothing).
    func mayForward() -> Bool {
        state.withLock { $0.up || configuration.downMode == .refuse }
    }

    func count(bytes: Int, toUpstream: Bool) {
        state.withLock { s in
            if toUpstream { s.statistics.bytesToUpstream += bytes } else { s.statistics.bytesToClient += bytes }
        }
    }

    /// Closes with a TCP reset, as a broken link looks to the other side.
    private static func reset(_ channel: any Channel) {
        guard let provider = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        // Shut the socket down before closing the descriptor: a child process forked
        // meanwhile may hold a copy of the descriptor, and then close alone sends nothing.
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
            channel.close(mode: .output).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
