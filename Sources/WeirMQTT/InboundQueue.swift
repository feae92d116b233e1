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
///
/// The common case costs the network thread one uncontended lock and an append: the
/// consumer is woken (a continuation resume, i.e. a task wake-up) only when it is parked,
/// and a woken consumer takes everything buffered at once (`nextBatch`). The producer
/// only touches the semaphore when the queue is full.
///
/// The bound counts the batch the consumer holds: a batch's slots are given back when the
/// consumer asks for the next one (it has processed the previous one by then). So at any
/// time at most `capacity` messages are received but not yet through the consumer — the
/// same bound a crash-loss estimate relies on.
final class InboundQueue: Sendable {
    private struct State: ~Copyable {
        var buffer: [MQTTMessage] = []
        /// Messages in the batch the consumer took last (not yet processed).
        var inHand = 0
        /// The parked consumer, when it found nothing to take.
        var waiter: CheckedContinuation<Void, Never>?
        /// The producer found the queue full and waits on `space`.
        var producerWaiting = false
        /// No more messages will be pushed; the consumer drains what is left, then ends.
        var finished = false
        /// The consumer is gone; producers stop waiting.
        var abandoned = false
        /// Since when messages have waited in `buffer` without the consumer taking any
        /// (`nil` while the buffer is empty): the consumer's progress, for liveness.
        var waitingSince: ContinuousClock.Instant?
        /// Since when the producer has found the queue full without finding room.
        var producerBlockedSince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// Signalled when a waiting producer may find room again.
    private let space = DispatchSemaphore(value: 0)
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Hands one message to the consumer; blocks the calling (network) thread while the
    /// queue is full. Returns `false` only when the consumer has gone away for good.
    func push(_ message: MQTTMessage) -> Bool {
        enum Outcome { case buffered, wake(CheckedContinuation<Void, Never>), full, abandoned }
        while true {
            let outcome: Outcome = state.withLock { s in
                if s.abandoned { return .abandoned }
                if s.buffer.count + s.inHand >= capacity {
                    s.producerWaiting = true
                    if s.producerBlockedSince == nil { s.producerBlockedSince = .now }
                    return .full
                }
                s.producerBlockedSince = nil
                if s.buffer.isEmpty { s.waitingSince = .now }
                s.buffer.append(message)
                guard let waiter = s.waiter else { return .buffered }
                s.waiter = nil
                return .wake(waiter)
            }
            switch outcome {
            case .buffered:
                return true
            case .wake(let waiter):
                waiter.resume()
                return true
            case .abandoned:
                return false
            case .full:
                // Woken by the consumer taking a batch (or by `abandon`); the timeout only
                // re-checks, so a stale signal or a missed one costs at most a retry.
                _ = space.wait(timeout: .now() + .milliseconds(100))
            }
        }
    }

    /// Waits until messages are buffered, then moves up to `max` of them, in arrival order,
    /// into `batch` (emptied first; its storage is reused). Returns `false` once finished
    /// and drained, or when the task is cancelled while nothing is buffered. Calling it
    /// again gives the previous batch's slots back. One consumer at a time.
    func nextBatch(into batch: inout [MQTTMessage], max: Int) async -> Bool {
        batch.removeAll(keepingCapacity: true)
        let limit = Swift.max(1, max)
        enum Outcome { case took(wakeProducer: Bool), end, park }
        while true {
            let outcome: Outcome = state.withLock { s in
                s.inHand = 0
                if s.buffer.isEmpty {
                    let wake = s.producerWaiting
                    s.producerWaiting = false
                    if wake { return .took(wakeProducer: true) }   // room again; nothing to take yet
                    return s.finished || s.abandoned || Task.isCancelled ? .end : .park
                }
                if s.buffer.count <= limit {
                    // Hand over the whole buffer; the producer appends into our old storage.
                    swap(&batch, &s.buffer)
                } else {
                    batch.append(contentsOf: s.buffer[..<limit])
                    s.buffer.removeFirst(limit)
                }
                s.inHand = batch.count
                // What is left has waited only since now: the consumer moved.
                s.waitingSince = s.buffer.isEmpty ? nil : .now
                let wake = s.producerWaiting
                s.producerWaiting = false
                return .took(wakeProducer: wake)
            }
            switch outcome {
            case .took(let wakeProducer):
                if wakeProducer { space.signal() }
                if !batch.isEmpty { return true }
            case .end:
                return false
            case .park:
                await park()
            }
        }
    }

    /// Suspends until a push, `finish`, `abandon` or cancellation. Only reached when the
    /// buffer was empty, so the continuation and cancellation handler stay off the busy path.
    private func park() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s in
                    if !s.buffer.isEmpty || s.finished || s.abandoned || Task.isCancelled { return true }
                    s.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                let w = s.waiter
                s.waiter = nil
                return w
            }
            waiter?.resume()
        }
    }

    /// Messages handed over but not yet taken by the consumer.
    var count: Int {
        state.withLock { $0.buffer.count }
    }

    /// How the hand-over is moving, for a liveness check: messages waiting, and since when
    /// they have waited without the consumer taking any, and since when the producer (the
    /// network thread) has been blocked on a full queue.
    var progress: InboundProgress {
        state.withLock { s in
            InboundProgress(waiting: s.buffer.count, inHand: s.inHand,
                            waitingSince: s.waitingSince, producerBlockedSince: s.producerBlockedSince)
        }
    }

    /// No more pushes will come: the consumer drains the buffer, then sees the end.
    func finish() {
        let waiter = state.withLock { s in
            s.finished = true
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// The consumer is gone: a blocked producer gives up instead of waiting forever.
    func abandon() {
        let (waiter, producerWaiting) = state.withLock { s in
            s.abandoned = true
            s.finished = true
            let w = s.waiter
            s.waiter = nil
            return (w, s.producerWaiting)
        }
        waiter?.resume()
        if producerWaiting { space.signal() }
    }
}

/// A snapshot of the inbound hand-over (`MQTTClient.inboundProgress`).
public struct InboundProgress: Sendable, Hashable {
    /// Messages received and waiting for the consumer.
    public var waiting: Int
    /// Messages the consumer took last and has not finished yet.
    public var inHand: Int
    /// Since when messages have waited without the consumer taking any (`nil`: none wait).
    public var waitingSince: ContinuousClock.Instant?
    /// Since when the network thread has waited for room in the full queue (`nil`: it is
    /// not waiting). While it waits it reads nothing from the broker.
    public var producerBlockedSince: ContinuousClock.Instant?

    public init(waiting: Int, inHand: Int, waitingSince: ContinuousClock.Instant?, producerBlockedSince: ContinuousClock.Instant?) {
        self.waiting = waiting
        self.inHand = inHand
        self.waitingSince = waitingSince
        self.producerBlockedSince = producerBlockedSince
    }
}
