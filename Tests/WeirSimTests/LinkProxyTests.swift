import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeirCore
@testable import WeirSim

/// The link-fault proxy over real loopback sockets, with an echo server upstream.
@Suite struct LinkProxyTests {
    final class EchoHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }

    /// An echo server and a proxy in front of it; both closed after `body`.
    static func withProxy<T>(_ configure: (inout LinkProxy.Configuration) -> Void = { _ in },
                             _ body: (LinkProxy, Int) async throws -> T) async throws -> T {
        let echo = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var configuration = LinkProxy.Configuration(listenHost: "127.0.0.1", listenPort: 0,
                                                    upstreamHost: "127.0.0.1", upstreamPort: echo.localAddress!.port!)
        configure(&configuration)
        let proxy = LinkProxy(configuration: configuration)
        let port = try await proxy.start()
        do {
            let result = try await body(proxy, port)
            await proxy.stop()
            try await echo.close()
            return result
        } catch {
            await proxy.stop()
            try? await echo.close()
            throw error
        }
    }

    @Test func forwardsBytesBothWays() async throws {
        try await Self.withProxy { proxy, port in
            let client = try TCPTestClient(port: port)
            defer { client.close() }
            let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await client.send(payload)
            let back = try await client.receive(count: payload.count, timeout: .seconds(5))
            #expect(back == payload)
            #expect(proxy.statistics.bytesToUpstream == payload.count)
            #expect(proxy.statistics.bytesToClient == payload.count)
        }
    }

    @Test func downResetsConnectionsAndRefusesNewOnesUntilUpAgain() async throws {
        try await Self.withProxy { proxy, port in
            let client = try TCPTestClient(port: port)
            defer { client.close() }
            try await client.send(Array("hello".utf8))
            #expect(try await client.receive(count: 5, timeout: .seconds(2)) == Array("hello".utf8))

            proxy.setLink(up: false, reason: "test")
            #expect(!proxy.isUp)
            // The open connection is gone: reading ends (reset or EOF) instead of waiting.
            await #expect(throws: TCPTestClient.Failure.closed) { _ = try await client.receive(count: 1, timeout: .seconds(5)) }
            // New connections are closed at once.
            let refused = try? TCPTestClient(port: port)
            if let refused {
                await #expect(throws: TCPTestClient.Failure.closed) {
                    try? await refused.send(Array("x".utf8))
                    _ = try await refused.receive(count: 1, timeout: .seconds(2))
                }
                refused.close()
            }

            proxy.setLink(up: true, reason: "test")
            let again = try TCPTestClient(port: port)
            defer { again.close() }
            try await again.send(Array("back".utf8))
            #expect(try await again.receive(count: 4, timeout: .seconds(2)) == Array("back".utf8))
            #expect(proxy.statistics.reset >= 1)
            #expect(proxy.statistics.transitions == 2)
        }
    }

    @Test func holdModeStallsInsteadOfResetting() async throws {
        try await Self.withProxy({ $0.downMode = .hold }) { proxy, port in
            let client = try TCPTestClient(port: port)
            defer { client.close() }
            try await client.send(Array("one".utf8))
            #expect(try await client.receive(count: 3, timeout: .seconds(2)) == Array("one".utf8))
            proxy.setLink(up: false, reason: "test")
            try await Task.sleep(for: .milliseconds(100))
            try await client.send(Array("two".utf8))
            await #expect(throws: TCPTestClient.Failure.timedOut) { _ = try await client.receive(count: 3, timeout: .milliseconds(500)) }
            // A connection made while down waits, too.
            let late = try TCPTestClient(port: port)
            defer { late.close() }
            try await late.send(Array("three".utf8))
            await #expect(throws: TCPTestClient.Failure.timedOut) { _ = try await late.receive(count: 5, timeout: .milliseconds(300)) }

            proxy.setLink(up: true, reason: "test")
            #expect(try await client.receive(count: 3, timeout: .seconds(2)) == Array("two".utf8))
            #expect(try await late.receive(count: 5, timeout: .seconds(2)) == Array("three".utf8))
        }
    }

    @Test func latencyAndBandwidthSlowTheLinkDown() async throws {
        try await Self.withProxy({ $0.latency = .milliseconds(150) }) { _, port in
            let client = try TCPTestClient(port: port)
            defer { client.close() }
            let start = ContinuousClock.now
            try await client.send(Array("ping".utf8))
            _ = try await client.receive(count: 4, timeout: .seconds(3))
            // There and back: two one-way latencies.
            #expect(start.duration(to: .now) >= .milliseconds(290))
        }
        try await Self.withProxy({ $0.bandwidth = 100_000 }) { _, port in
            let client = try TCPTestClient(port: port)
            defer { client.close() }
            let payload = [UInt8](repeating: 7, count: 50_000)
            let start = ContinuousClock.now
            try await client.send(payload)
            #expect(try await client.receive(count: payload.count, timeout: .seconds(5)) == payload)
            // 50 kB at 100 kB/s (the echo comes back while the rest still goes up).
            #expect(start.duration(to: .now) >= .milliseconds(450))
        }
    }

    @Test func followsItsSchedule() async throws {
        let seen = Mutex<[Bool]>([])
        let echoPort = try FreePorts.allocate(1)[0]
        let proxy = LinkProxy(configuration: .init(listenHost: "127.0.0.1", listenPort: 0, upstreamHost: "127.0.0.1", upstreamPort: echoPort)) { up, _, _ in
            seen.withLock { $0.append(up) }
        }
        _ = try await proxy.start()
        let follower = Task { await proxy.follow(try! LinkSchedule.parse("down 200ms, up 200ms, ...")) }
        // Four transitions take 0.6 s; allow for a busy machine.
        let deadline = ContinuousClock.now + .seconds(10)
        while seen.withLock({ $0.count }) < 4, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        follower.cancel()
        await follower.value
        await proxy.stop()
        let states = seen.withLock { $0 }
        #expect(states.count >= 4)
        #expect(Array(states.prefix(4)) == [false, true, false, true])
    }
}

/// A blocking loopback TCP client for tests.
final class TCPTestClient: @unchecked Sendable {
    enum Failure: Error, Equatable { case connect(Int32), closed, timedOut, io(Int32) }
    private let fd: Int32

    init(port: Int) throws {
        // CLOEXEC: processes other tests start must not inherit the socket.
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Foundation.close(fd)
            throw Failure.connect(e)
        }
    }

    /// Blocking socket calls run on NIO's thread pool, never on the cooperative pool
    /// (which has as many threads as cores, two on CI).
    func send(_ bytes: [UInt8]) async throws {
        try await NIOThreadPool.singleton.runIfActive { try self.sendBlocking(bytes) }
    }

    func receive(count: Int, timeout: Duration) async throws -> [UInt8] {
        try await NIOThreadPool.singleton.runIfActive { try self.receiveBlocking(count: count, timeout: timeout) }
    }

    private func sendBlocking(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure.io(errno) }
            offset += n
        }
    }

    /// Reads exactly `count` bytes; `.closed` on EOF or reset, `.timedOut` if they do not come.
    private func receiveBlocking(count: Int, timeout: Duration) throws -> [UInt8] {
        var out: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        while out.count < count {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { throw Failure.timedOut }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(1, left.milliseconds)))
            if ready == 0 { throw Failure.timedOut }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - out.count), 0) }
            if n == 0 { throw Failure.closed }
            if n < 0 {
                if errno == ECONNRESET || errno == EPIPE { throw Failure.closed }
                if errno == EAGAIN || errno == EINTR { continue }
                throw Failure.io(errno)
            }
            out += buffer[..<n]
        }
        return out
    }

    func close() { Foundation.close(fd) }
}
