import NIOCore

/// Calls `onActive` once its channel is active, then stays out of the way.
final class ActivationHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let onActive: (any Channel) -> Void

    init(onActive: @escaping (any Channel) -> Void) {
        self.onActive = onActive
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        onActive(context.channel)
    }
}

/// Latency and bandwidth for one direction.
struct Shaping: Sendable {
    var latency: Duration
    var bandwidth: Int?

    var isNone: Bool { latency == .zero && bandwidth == nil }
}

/// Forwards what its channel reads to `peer`, shaped, with backpressure: when the peer
/// cannot take more, or too much waits for delivery, its channel stops reading.
final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let peer: any Channel
    private let shaping: Shaping
    private let proxy: LinkProxy
    private let toUpstream: Bool
    /// When the last scheduled chunk finishes "transmitting" (bandwidth) and arrives (latency).
    private var sendFree = NIODeadline.uptimeNanoseconds(0)
    private var lastDelivery = NIODeadline.uptimeNanoseconds(0)
    private var pendingBytes = 0
    private var lastWrite: EventLoopFuture<Void>?
    private static let pauseAbove = 1 << 20

    init(peer: any Channel, shaping: Shaping, proxy: LinkProxy, toUpstream: Bool) {
        self.peer = peer
        self.shaping = shaping
        self.proxy = proxy
        self.toUpstream = toUpstream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let bytes = buffer.readableBytes
        proxy.count(bytes: bytes, toUpstream: toUpstream)
        let peer = self.peer
        if shaping.isNone {
            lastWrite = peer.writeAndFlush(buffer)
            if !peer.isWritable { context.channel.setOption(.autoRead, value: false).whenComplete { _ in } }
            return
        }
        let now = NIODeadline.now()
        var deliverAt = now + TimeAmount(shaping.latency)
        if let bandwidth = shaping.bandwidth, bandwidth > 0 {
            let start = max(now, sendFree)
            sendFree = start + .nanoseconds(Int64(Double(bytes) / Double(bandwidth) * 1e9))
            deliverAt = sendFree + TimeAmount(shaping.latency)
        }
        // Keep chunks in order even when their deadlines tie.
        if deliverAt <= lastDelivery { deliverAt = lastDelivery + .nanoseconds(1) }
        lastDelivery = deliverAt
        pendingBytes += bytes
        if pendingBytes > Self.pauseAbove { context.channel.setOption(.autoRead, value: false).whenComplete { _ in } }
        let channel = context.channel
        let promise = context.eventLoop.makePromise(of: Void.self)
        lastWrite = promise.futureResult
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(deadline: deliverAt) {
            peer.writeAndFlush(buffer, promise: promise)
            let me = handler.value
            me.pendingBytes -= bytes
            if me.pendingBytes <= Self.pauseAbove / 4, peer.isWritable, me.proxy.mayForward() {
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Our channel can take more: let the peer, which writes into it, read again.
        if context.channel.isWritable, proxy.mayForward() {
            peer.setOption(.autoRead, value: true).whenComplete { _ in }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let peer = self.peer
        if let lastWrite {
            lastWrite.whenComplete { _ in Self.shutDown(peer) }
        } else {
            Self.shutDown(peer)
        }
        context.fireChannelInactive()
    }

    /// Sends FIN, then closes. (A process forked meanwhile may hold a copy of the socket's
    /// descriptor; closing alone would then leave the other side waiting.)
    static func shutDown(_ channel: any Channel) {
        channel.close(mode: .output).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
