import Logging
import Synchronization
import WeirCore
import WeirMQTT
import WeirSupport

/// Collects what the ingest pipeline accepts and seals it into the buffer: every
/// `flush_interval` (the `SealerService` ticks), when `chunk_max_readings` is reached (the
/// ingest loop calls `sealNow` after the hand-over that reached it; the seal cuts what is
/// pending into chunks of at most `chunk_max_readings`), and once more at shutdown.
///
/// Two locks: `state` (pipeline and pending input) is held only briefly, so ingest keeps
/// going while a chunk is encoded and written; `sealing` serialises seals, so chunks are
/// committed in the order they were taken.
final class ChunkSealer: Sendable {
    private struct State: ~Copyable {
        var pipeline: IngestPipeline
        var pending = SealInput()
    }

    let buffer: EdgeBuffer
    let caps: BufferCaps
    let inFlight: InFlightChunks
    let metrics: EdgeMetrics
    let logger: Logger
    /// Readings a compacted chunk may hold (one request's worth).
    let compactTarget: Int
    private let state: Mutex<State>
    private let sealing = Mutex(())

    init(buffer: EdgeBuffer, configuration: EdgeConfiguration, inFlight: InFlightChunks, metrics: EdgeMetrics, logger: Logger) {
        self.buffer = buffer
        self.caps = BufferCaps(maxBytes: configuration.buffer.maxBytes, maxAgeMs: configuration.buffer.maxAge.milliseconds,
                               maxDeadLetters: configuration.deadLetters.maxRows, maxChunkReadings: configuration.buffer.chunkMaxReadings)
        self.inFlight = inFlight
        self.metrics = metrics
        self.logger = logger
        self.compactTarget = max(configuration.buffer.chunkMaxReadings, configuration.uplink.maxRequestReadings)
        self.state = Mutex(State(pipeline: IngestPipeline(configuration: configuration)))
    }

    /// Runs the messages of one hand-over through the pipeline; returns how many readings
    /// now wait to be sealed.
    func ingest(_ messages: [MQTTMessage], receivedAt: Int64 = WallClock.nowMs()) -> Int {
        state.withLock { s in
            s.pipeline.process(messages, receivedAt: receivedAt, into: &s.pending)
            return s.pending.readings.count
        }
    }

    /// Seals what is pending (plus due downsample buckets; all of them when `final`).
    /// On a write failure the input is put back, so nothing accepted is lost.
    @discardableResult
    func sealNow(final: Bool = false) throws -> SealOutcome? {
        try sealing.withLock { _ in
            let now = WallClock.nowMs()
            let input: SealInput = state.withLock { s in
                s.pipeline.flushFilters(now: now, all: final, into: &s.pending)
                let taken = s.pending
                s.pending = SealInput()
                return taken
            }
            if input.isEmpty { return nil }
            do {
                let outcome = try inFlight.withLock { sending in
                    let outcome = try buffer.seal(input, caps: caps, inFlight: sending, now: now)
                    // A backlog is building: merge its small chunks (best effort).
                    do {
                        try buffer.compact(targetReadings: compactTarget, minChunks: 16, excluding: sending, now: now)
                    } catch {
                        logger.warning("compacting the backlog failed", metadata: ["weir.error": "\(error)"])
                    }
                    return outcome
                }
                metrics.recordSeal(input: input, outcome: outcome, bufferedBytes: buffer.bufferedBytes)
                if outcome.evictedChunks > 0 {
                    logger.warning("buffer cap reached: evicted oldest chunks into the drop ledger",
                                   metadata: ["weir.chunks": "\(outcome.evictedChunks)", "weir.readings": "\(outcome.evictedReadings)"])
                }
                return outcome
            } catch {
                state.withLock { s in
                    var restored = input
                    restored.readings.append(contentsOf: s.pending.readings)
                    restored.deadLetters.append(contentsOf: s.pending.deadLetters)
                    restored.addCounters(of: s.pending)
                    s.pending = restored
                }
                throw error
            }
        }
    }

    /// Readings waiting to be sealed.
    var pendingReadings: Int { state.withLock { $0.pending.readings.count } }
}

/// The chunk sequence numbers the uplink is sending right now; eviction skips them, so a
/// chunk is never both forwarded and written to the drop ledger. The lock is held across
/// the uplink's read of the next chunks and across a seal's eviction, so the two cannot
/// interleave (a chunk read for sending is marked before eviction can look at it).
final class InFlightChunks: Sendable {
    private let seqs = Mutex<Set<Int64>>([])
    func withLock<T>(_ body: (inout Set<Int64>) throws -> T) rethrows -> T {
        try seqs.withLock { try body(&$0) }
    }
    func set(_ new: some Sequence<Int64>) { seqs.withLock { $0 = Set(new) } }
    func clear() { seqs.withLock { $0.removeAll() } }
}
