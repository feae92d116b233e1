import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes a connection after an answer that says `Connection: close` — weir-cloud's
/// refusals sent before the request body was read (413, 401, 403, 415; 400) — without
/// leaving a client that writes its whole body before reading stuck.
///
/// Hummingbird (2.28.1, `HTTPChannelHandler.handleHTTP`) only closes when the *request*
/// says `Connection: close`; after any other answer it waits to drain the body as the next
/// request's prelude. A client still sending 27 MB the server will never use then waits on
/// the server: the body crawls through the request-part stream, or, when the request asked
/// for close, is not read at all while the client's send buffer is full — until its own
/// timeout. So once such an answer is written, this handler
/// 1. half-closes the output, so the client sees the answer end (EOF after the answer),
/// 2. reads and discards whatever the client still sends (a "lingering close", as HTTP
///    servers do, so the client's writes complete and it gets to read the answer; closing
///    at once would reset the connection and could destroy the unread answer), and
/// 3. closes the connection when the client closes its side, or after `linger` at most.
///
/// It sits in Hummingbird's HTTP/1 pipeline through `HTTP1Channel.Configuration`'s
/// `additionalChannelHandlers`, one instance per connection.
final class LingeringCloseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        case serving
        /// The answer's head said `Connection: close`; waiting for its end.
        case closingAfterAnswer
        /// The answer is out: discarding input until the client closes or `linger` passes.
        case lingering
    }

    private var state = State.serving
    private var deadline: Scheduled<Void>?
    let linger: TimeAmount

    init(linger: TimeAmount = .seconds(5)) {
        self.linger = linger
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.headerFields[.connection]?.lowercased() == "close":
            state = .closingAfterAnswer
            context.write(data, promise: promise)
        case .end where state == .closingAfterAnswer:
            state = .lingering
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(data, promise: written)
            written.futureResult.hop(to: context.eventLoop).assumeIsolated().whenComplete { _ in
                context.close(mode: .output, promise: nil)
            }
            if let promise { written.futureResult.cascade(to: promise) }
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: linger) {
                context.close(promise: nil)
            }
            context.read()
        default:
            context.write(data, promise: promise)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // What a refused request still sends is discarded, not handed to the application.
        guard case .lingering = state else { return context.fireChannelRead(data) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard case .lingering = state else { return context.fireChannelReadComplete() }
        // Keep reading even though nothing reaches the application's back-pressured stream.
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .lingering = state, let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}
