/// The uplink's decisions, without I/O: which piece goes to which URL, what the cloud's
/// answer means for the chunks, how long to wait, and when `status` should hear of it.
/// ``UplinkService`` does what each ``Action`` says and answers with the matching event;
/// the machine itself touches no socket, file or clock, so `UplinkStateMachineTests`
/// drive it answer by answer (as postgres-nio tests its `ConnectionStateMachine`).
///
/// ```swift
/// var machine = UplinkStateMachine(urls: ["https://a:8443", "https://b:8443"],
///                                  backoff: Backoff(base: .milliseconds(200), cap: .seconds(30)),
///                                  idleWait: .milliseconds(100))
/// machine.start()                      // .prepareBatch(outboxFirst: true)
/// machine.batchPrepared(batch)         // .send(batch, to: "https://a:8443")
/// machine.responseReceived(.unreachable(reason: "connection refused"))
///                                      // .failOver(to: "https://b:8443", reason: "connection refused")
/// machine.recorded()                   // .send(batch, to: "https://b:8443")
/// machine.responseReceived(.committed) // .forward(batch, leaving: .failingOver)
/// machine.recorded()                   // .prepareBatch(outboxFirst: false)
/// ```
///
/// The rules (DESIGN.md, Forwarding):
/// - 2xx: delete the batch's chunks and drop rows, then the next batch at once;
/// - no answer (connection error, timeout) or a 5xx: the next URL of `uplink.url` at once
///   (a replica gets the same batch again safely: the cloud applies it once); back off
///   only once every URL has failed in a row; a 503's `Retry-After` sets that wait;
/// - 429: wait `Retry-After` (or back off) and stay on the URL; 408, an unexpected
///   status, a body that does not encode: back off, same URL;
/// - 401/403, a certificate problem, 404/405: keep every chunk and back off, reported
///   once per episode;
/// - 413: split the piece and send the halves in order; pieces the cloud commits are
///   forwarded even when a later piece fails, and only the failing piece is rejected; a
///   piece that cannot get smaller (one reading) is rejected;
/// - other 4xx: move the piece's chunks to the rejected table, then the next batch;
/// - shutdown, whatever is going on: stop. The chunks stay in the buffer and its outbox
///   makes the next start send the same batch first.
struct UplinkStateMachine {
    /// What the service does next. Each says which event answers it.
    enum Action: Equatable {
        /// Read the next batch from the buffer, in replay order (`outboxFirst`: the batch
        /// that was in flight when the edge last stopped); answer ``batchPrepared(_:)``.
        case prepareBatch(outboxFirst: Bool)
        /// Nothing to send: sleep, then answer ``waited()``.
        case waitForChunks(Duration)
        /// POST the piece to the URL; answer ``responseReceived(_:)``.
        case send(UplinkBatch, to: String)
        /// The cloud said 413 to this piece: split it; answer ``splitFinished(_:)`` or
        /// ``splitFailed(_:)``.
        case split(UplinkBatch)
        /// A split batch ended in something other than a 2xx: first mark forwarded the
        /// pieces the cloud committed before (`of`: the batch they are pieces of);
        /// answer ``recorded()`` (or ``bufferFailed(_:)``).
        case forwardPieces([UplinkBatch], of: UplinkBatch)
        /// The cloud committed the batch: delete its chunks and drop rows. `leaving` is the
        /// state this success ends (record `ok`, and log a recovery unless it was `idle`);
        /// `nil` when it was `ok` already. Answer ``recorded()`` (or ``bufferFailed(_:)``).
        case forward(UplinkBatch, leaving: UplinkState?)
        /// Move the piece's chunks to the rejected table, for good; answer ``recorded()``
        /// (or ``bufferFailed(_:)``).
        case reject(UplinkBatch, Rejection)
        /// Record the URL as the one in use, and `failing over` with the reason; answer
        /// ``recorded()``, and the same batch goes to that URL.
        case failOver(to: String, reason: String)
        /// Keep every chunk. `report`: the problem is new (to this episode), so log it and
        /// record its state; then sleep for the delay and answer ``waited()``.
        case backOff(Problem, Delay, report: Bool)
        /// Shut down: do nothing more.
        case stop
    }

    /// Why a piece goes to the rejected table.
    enum Rejection: Equatable {
        /// The cloud refused it for good (a 4xx the edge cannot fix by waiting).
        case refused(status: Int, body: String)
        /// A single reading over the cloud's body cap: a 413 with nothing left to split.
        case tooLarge
    }

    /// Why the uplink backs off with every chunk kept.
    enum Problem: Equatable {
        case unauthorized(status: Int, body: String)
        case certificateProblem(UplinkTLSProblem)
        /// `url` is the URL that answered 404/405.
        case endpointNotFound(status: Int, body: String, url: String)
        /// Every URL failed in a row (or the failure was one another URL cannot help).
        case retrying(reason: String)
        /// The buffer file failed (disk full, I/O error): a local problem, recorded every
        /// time and not counted as a cloud episode.
        case buffer(String)

        /// What `status` shows while it lasts.
        var state: UplinkState {
            switch self {
            case .unauthorized: .unauthorized
            case .certificateProblem: .certificateProblem
            case .endpointNotFound: .endpointNotFound
            case .retrying: .retrying
            case .buffer: .error
            }
        }
    }

    /// How long a ``Action/backOff(_:_:report:)`` sleeps.
    enum Delay: Equatable {
        /// What the cloud asked for in `Retry-After`.
        case retryAfter(Duration)
        /// A random time up to the ceiling (full jitter, ``Backoff/jittered(upTo:)``).
        case backoff(upTo: Duration)
    }

    /// The state `status` shows, as last reported: an episode (unauthorized, retrying...)
    /// is logged and recorded when it begins, not at every retry.
    private(set) var status: UplinkState = .idle
    private var state: State = .initialized
    private var target: UplinkTarget
    private var backoff: Backoff
    private let idleWait: Duration
    /// The buffer's outbox has been read (it matters for the first batch after a start).
    private var outboxRead = false

    /// `urls`: `uplink.url`'s list; `idleWait`: how long to sleep when nothing is waiting.
    init(urls: [String], backoff: Backoff, idleWait: Duration) {
        self.target = UplinkTarget(urls: urls)
        self.backoff = backoff
        self.idleWait = idleWait
    }

    /// The URL the next piece goes to.
    var url: String { target.url }

    // MARK: Events

    mutating func start() -> Action {
        guard case .initialized = state else { invalid("start") }
        return prepare()
    }

    /// The buffer's next batch, or `nil` when nothing waits.
    mutating func batchPrepared(_ batch: UplinkBatch?) -> Action {
        switch state {
        case .preparing:
            outboxRead = true
            guard let batch else {
                state = .waitingForChunks
                return .waitForChunks(idleWait)
            }
            return send(batch)
        case .stopped:
            return .stop
        default:
            invalid("batchPrepared")
        }
    }

    /// The cloud's answer to the piece on the wire (or why there was none).
    mutating func responseReceived(_ response: UplinkResponse) -> Action {
        switch state {
        case .sending(var delivery):
            switch response {
            case .committed:
                guard delivery.pieceCommitted() else {
                    state = .sending(delivery)
                    return .send(delivery.piece, to: target.url)
                }
                state = .recording(.forward(delivery.batch))
                return .forward(delivery.batch, leaving: status == .ok ? nil : status)
            case .tooLarge:
                state = .splitting(delivery)
                return .split(delivery.piece)
            default:
                return end(delivery, with: response)
            }
        case .stopped:
            return .stop
        default:
            invalid("responseReceived")
        }
    }

    /// The piece that drew a 413, in smaller pieces; `nil` when it cannot get smaller.
    mutating func splitFinished(_ pieces: [UplinkBatch]?) -> Action {
        switch state {
        case .splitting(var delivery):
            guard let pieces, !pieces.isEmpty else { return end(delivery, with: .tooLarge) }
            delivery.split(into: pieces)
            state = .sending(delivery)
            return .send(delivery.piece, to: target.url)
        case .stopped:
            return .stop
        default:
            invalid("splitFinished")
        }
    }

    /// Splitting failed (a chunk did not decode on the second look): like a body that
    /// does not encode, back off and try the batch again.
    mutating func splitFailed(_ reason: String) -> Action {
        switch state {
        case .splitting(let delivery):
            return end(delivery, with: .notSent(reason: reason))
        case .stopped:
            return .stop
        default:
            invalid("splitFailed")
        }
    }

    /// The buffer did what a ``Action/forwardPieces(_:of:)``, ``Action/forward(_:leaving:)``,
    /// ``Action/reject(_:_:)`` or ``Action/failOver(to:reason:)`` said.
    mutating func recorded() -> Action {
        switch state {
        case .recording(.forward):
            // Only now: a forward the buffer could not record is sent again, and its
            // success must then still end the episode.
            status = .ok
            backoff.reset()
            target.succeeded()
            return prepare()
        case .recording(.reject):
            return prepare()
        case .recording(.pieces(_, let response, let piece)):
            // The batch is not what the buffer holds any more: what is left is read afresh.
            return conclude(response, piece: piece, kept: nil)
        case .recording(.failOver(let kept)):
            return resume(kept)
        case .stopped:
            return .stop
        default:
            invalid("recorded")
        }
    }

    /// A sleep (``Action/waitForChunks(_:)``, ``Action/backOff(_:_:report:)``) ended.
    mutating func waited() -> Action {
        switch state {
        case .waitingForChunks:
            return prepare()
        case .waiting(let kept):
            return resume(kept)
        case .stopped:
            return .stop
        default:
            invalid("waited")
        }
    }

    /// Reading or writing the buffer file failed. Back off; the batch in hand is sent
    /// again unless pieces of it were already forwarded (then it is read afresh).
    mutating func bufferFailed(_ message: String) -> Action {
        let kept: UplinkBatch?
        switch state {
        case .preparing: kept = nil
        case .recording(.forward(let batch)), .recording(.pieces(let batch, _, _)): kept = batch
        case .recording(.reject(let batch)), .recording(.failOver(let batch)): kept = batch
        case .stopped: return .stop
        default: invalid("bufferFailed")
        }
        return backOff(.buffer(message), delay: nil, kept: kept)
    }

    /// Graceful shutdown, at any point (a POST it interrupts is not an answer).
    mutating func shutdown() -> Action {
        state = .stopped
        return .stop
    }

    // MARK: Transitions

    private mutating func prepare() -> Action {
        state = .preparing
        return .prepareBatch(outboxFirst: !outboxRead)
    }

    private mutating func send(_ batch: UplinkBatch) -> Action {
        state = .sending(Delivery(batch: batch))
        return .send(batch, to: target.url)
    }

    /// After a wait or a failover: the kept batch again, from its first byte (a split
    /// starts over: the next URL may take it whole), or a new one.
    private mutating func resume(_ kept: UplinkBatch?) -> Action {
        guard let kept else { return prepare() }
        return send(kept)
    }

    /// The delivery ended with `response` for its current piece (not a 2xx).
    private mutating func end(_ delivery: Delivery, with response: UplinkResponse) -> Action {
        let committed = delivery.committed
        if committed.isEmpty { return conclude(response, piece: delivery.piece, kept: delivery.batch) }
        state = .recording(.pieces(delivery.batch, then: response, piece: delivery.piece))
        return .forwardPieces(committed, of: delivery.batch)
    }

    /// What the answer for `piece` means. `kept`: the batch to send again if the chunks
    /// stay (`nil`: read the buffer afresh).
    private mutating func conclude(_ response: UplinkResponse, piece: UplinkBatch, kept: UplinkBatch?) -> Action {
        let url = target.url
        switch response {
        case .committed:
            preconditionFailure("a committed batch is forwarded in responseReceived")
        case .rejected(let status, let body):
            state = .recording(.reject(kept: kept))
            return .reject(piece, .refused(status: status, body: body))
        case .tooLarge:
            state = .recording(.reject(kept: kept))
            return .reject(piece, .tooLarge)
        case .unauthorized(let status, let body):
            return backOff(.unauthorized(status: status, body: body), delay: nil, kept: kept)
        case .certificateProblem(let problem):
            return backOff(.certificateProblem(problem), delay: nil, kept: kept)
        case .endpointNotFound(let status, let body):
            return backOff(.endpointNotFound(status: status, body: body, url: url), delay: nil, kept: kept)
        case .slowDown(let status, let after, let body):
            return retry(after: after, reason: Self.httpReason(status, url, body), failover: false, kept: kept)
        case .serverError(let status, let after, let body):
            return retry(after: after, reason: Self.httpReason(status, url, body), failover: true, kept: kept)
        case .requestTimeout(let body):
            return retry(after: nil, reason: Self.httpReason(408, url, body), failover: false, kept: kept)
        case .unexpected(let status):
            return retry(after: nil, reason: "unexpected HTTP \(status) from \(url)", failover: false, kept: kept)
        case .unreachable(let reason):
            return retry(after: nil, reason: reason, failover: true, kept: kept)
        case .notSent(let reason):
            return retry(after: nil, reason: reason, failover: false, kept: kept)
        }
    }

    /// Another replica may do better when `failover`: move on at once, and back off only
    /// once every URL has failed in a row.
    private mutating func retry(after: Duration?, reason: String, failover: Bool, kept: UplinkBatch?) -> Action {
        if failover, let next = target.failed() {
            status = .failingOver
            state = .recording(.failOver(kept: kept))
            return .failOver(to: next, reason: reason)
        }
        return backOff(.retrying(reason: reason), delay: after.map(Delay.retryAfter), kept: kept)
    }

    private mutating func backOff(_ problem: Problem, delay: Delay?, kept: UplinkBatch?) -> Action {
        let report: Bool
        if case .buffer = problem {
            report = true   // the buffer's own trouble is said every time; the episode goes on
        } else {
            report = status != problem.state
            status = problem.state
        }
        state = .waiting(kept: kept)
        return .backOff(problem, delay ?? .backoff(upTo: backoff.nextCeiling()), report: report)
    }

    private static func httpReason(_ status: Int, _ url: String, _ body: String) -> String {
        "HTTP \(status) from \(url): \(body.prefix(200))"
    }

    private func invalid(_ event: String) -> Never {
        preconditionFailure("UplinkStateMachine: \(event) is not expected in state \(String(describing: state).prefix(200))")
    }

    // MARK: State

    private enum State {
        /// Created; ``start()`` comes next.
        case initialized
        /// The service reads the next batch.
        case preparing
        /// Nothing was waiting; the service sleeps.
        case waitingForChunks
        /// A piece of the delivery is on the wire.
        case sending(Delivery)
        /// The piece that drew a 413 is being split.
        case splitting(Delivery)
        /// The service writes to the buffer file.
        case recording(Record)
        /// The service sleeps before sending `kept` again (`nil`: a new batch).
        case waiting(kept: UplinkBatch?)
        case stopped
    }

    /// The buffer write under way, and what the machine needs after it.
    private enum Record {
        case forward(UplinkBatch)
        /// Pieces of the batch are being forwarded; `then` is the answer that ended it, for `piece`.
        case pieces(UplinkBatch, then: UplinkResponse, piece: UplinkBatch)
        /// `kept`: the batch to send again if the write fails (`nil` when pieces of it were forwarded).
        case reject(kept: UplinkBatch?)
        case failOver(kept: UplinkBatch?)
    }

    /// One batch on its way, with the 413 splits under way: each split is a frame, as a
    /// recursive send would keep on its stack.
    private struct Delivery {
        /// A piece that drew a 413: its pieces not yet committed (the first is on the
        /// wire, or its own split is) and those that were.
        struct Split {
            var remaining: [UplinkBatch]
            var committed: [UplinkBatch] = []
        }

        let batch: UplinkBatch
        /// Outermost first.
        var splits: [Split] = []

        /// The piece on the wire: the batch itself unless a 413 split it.
        var piece: UplinkBatch { splits.last?.remaining.first ?? batch }

        /// The pieces committed so far, outermost split first. A piece whose own split
        /// went through is listed whole, not as its pieces.
        var committed: [UplinkBatch] { splits.flatMap(\.committed) }

        mutating func split(into pieces: [UplinkBatch]) {
            splits.append(Split(remaining: pieces))
        }

        /// The piece on the wire was committed. Returns `true` when that completes the
        /// whole batch.
        mutating func pieceCommitted() -> Bool {
            // A split whose last piece is committed makes the piece it split committed,
            // one level down; and so on.
            while var innermost = splits.popLast() {
                innermost.committed.append(innermost.remaining.removeFirst())
                if !innermost.remaining.isEmpty {
                    splits.append(innermost)
                    return false
                }
            }
            return true
        }
    }
}
