import Dispatch
import Synchronization

/// The hand-over between libmosquitto's network thread and the Swift consumer: a bounded
/// FIFO whose producer *blocks* while it is full.
///
/// Blocking is the point: while the network thread waits here it stops reading the
/// socket, the broker stops getting acknowledgements, and its in-flight window (plus its
/// persistent queue for our session) holds the rest. Nothing is ever dropped because the
/// consumer is slow. An `AsyncStream` continuation with a buffering policy could only
/// drop or grow without bound, so the bound lives here.
final class InboundQueue: Sendable {
    private struct State: ~Copyable {
        var buffer: [MQTTMessage] = []
        var head = 0
        var waiter: CheckedContinuation<MQTTMessage?, Never>?
        /// No more messages will be pushed; the consumer drains what is left, then ends.
        var finished = false
        /// The consumer is gone; producers stop waiting.
        var abandoned = false
    }

    private let state = Mutex(State())
    /// Free slots. `wait()` takes one before a push, the consumer gives it back.
    private let space: DispatchSemaphore

    init(capacity: Int) {
        space = DispatchSemaphore(value: max(1, capacity))
    }

    /// Hands one message to the consumer; blocks the calling (network) thread while the
    /// queue is full. Returns `false` only when the consumer has gone away for good.
    func push(_ message: MQTTMessage) -> Bool {
        while space.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
            if state.withLock({ $0.abandoned }) { return false }
        }
        enum Outcome { case buffered, handTo(CheckedContinuation<MQTTMessage?, Never>), abandoned }
        let outcome: Outcome = state.withLock { s in
            if s.abandoned { return .abandoned }
            if let waiter = s.waiter {
                s.waiter = nil
                return .handTo(waiter)
            }
            s.buffer.append(message)
            return .buffered
        }
        switch outcome {
        case .buffered:
            return true
        case .handTo(let waiter):
            space.signal()
            waiter.resume(returning: message)
            return true
        case .abandoned:
            space.signal()
            return false
        }
    }

    /// The next message, waiting for one; `nil` once finished and drained (or cancelled).
    func next() async -> MQTTMessage? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<MQTTMessage?, Never>) in
                enum Outcome { case message(MQTTMessage), end, wait }
                let outcome: Outcome = state.withLock { s in
                    if s.head < s.buffer.count {
                        let m = s.buffer[s.head]
                        s.head += 1
                        if s.head >= 256, s.head * 2 >= s.buffer.count {
                            s.buffer.removeFirst(s.head)
                            s.head = 0
                        }
                        return .message(m)
                    }
                    if s.finished || s.abandoned || Task.isCancelled { return .end }
                    s.waiter = continuation
                    return .wait
                }
                switch outcome {
                case .message(let m):
                    space.signal()
                    continuation.resume(returning: m)
                case .end:
                    continuation.resume(returning: nil)
                case .wait:
                    break
                }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                let w = s.waiter
                s.waiter = nil
                return w
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Messages already handed over but not yet taken by the consumer.
    var count: Int {
        state.withLock { $0.buffer.count - $0.head }
    }

    /// No more pushes will come: the consumer drains the buffer, then sees the end.
    func finish() {
        let waiter = state.withLock { s in
            s.finished = true
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: nil)
    }

    /// The consumer is gone: a blocked producer gives up instead of waiting forever.
    func abandon() {
        let waiter = state.withLock { s in
            s.abandoned = true
            s.finished = true
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: nil)
    }
}
