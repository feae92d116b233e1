/// Follows the edge's counters sample by sample and recognises a backlog: readings piling
/// up in the buffer while forwarding makes no progress, then draining once it resumes.
/// Pure, so the watch's arithmetic can be tested without an edge.
///
/// About a second of ingest sits in the buffer in normal operation, so only more than that
/// (and at least 200 readings) counts as a backlog. The edge's buffer gauge can lag its
/// forwarded counter, so a drain is timed by the counter: from the last sample without
/// progress until a backlog's worth has been forwarded (or the buffer is back to normal).
///
/// ```swift
/// var tracker = BacklogTracker()
/// if case .drained(let drain)? = tracker.observe(seconds: t, accepted: a, buffered: b, forwarded: f) { ... }
/// ```
public struct BacklogTracker: Sendable {
    /// A backlog that has drained.
    public struct Drain: Sendable, Hashable {
        /// Readings buffered at its peak.
        public var peak: Int
        /// From the last sample without progress to the sample that saw it drained.
        public var seconds: Double
        /// Readings forwarded per second meanwhile (a lower bound when the drain is quick).
        public var rate: Double
    }

    /// What the latest sample shows.
    public enum State: Sendable, Hashable {
        /// The buffer holds no more than usual.
        case normal
        /// A backlog waits and nothing is forwarded.
        case building(buffered: Int)
        /// Forwarding resumed: `done` of the backlog's peak is forwarded, at `rate` readings/s.
        case draining(peak: Int, done: Double, rate: Double)
    }

    public private(set) var state = State.normal
    /// The largest backlog seen.
    public private(set) var largestPeak = 0
    /// The drain of the largest backlog.
    public private(set) var largestDrain: Drain?
    /// Smoothed ingest rate, readings/s.
    public private(set) var ingestRate = 0.0

    private var peak = 0
    private var stalled: (seconds: Double, forwarded: Int)?
    private var last: (seconds: Double, accepted: Int, forwarded: Int)?

    public init() {}

    /// Feeds one sample (time in seconds since any fixed origin); returns the drain it
    /// completes, if any.
    public mutating func observe(seconds: Double, accepted: Int, buffered: Int, forwarded: Int) -> Drain? {
        var progressed = false
        if let last {
            let dt = seconds - last.seconds
            if dt > 0 { ingestRate = 0.7 * ingestRate + 0.3 * Double(accepted - last.accepted) / dt }
            progressed = forwarded > last.forwarded
        }
        last = (seconds, accepted, forwarded)
        let threshold = Swift.max(200, Int(ingestRate))
        if buffered > threshold {
            peak = Swift.max(peak, buffered)
            if !progressed { stalled = (seconds, forwarded) }
        }
        largestPeak = Swift.max(largestPeak, peak)

        var finished: Drain?
        // Without progress a backlog may only look smaller because the ingest estimate grew.
        if peak > 0, let from = stalled, forwarded > from.forwarded,
           forwarded - from.forwarded >= peak || buffered <= threshold {
            // Only a backlog worth the name (twice the normal level) counts.
            if peak > 2 * threshold {
                let elapsed = seconds - from.seconds
                let drain = Drain(peak: peak, seconds: elapsed, rate: elapsed > 0 ? Double(forwarded - from.forwarded) / elapsed : 0)
                if peak >= (largestDrain?.peak ?? 0) { largestDrain = drain }
                finished = drain
            }
            peak = 0
            stalled = nil
        }

        if peak > 0, let from = stalled, forwarded > from.forwarded {
            let elapsed = seconds - from.seconds
            state = .draining(peak: peak, done: Swift.min(1, Double(forwarded - from.forwarded) / Double(peak)),
                              rate: elapsed > 0 ? Double(forwarded - from.forwarded) / elapsed : 0)
        } else if peak > 0, buffered > threshold {
            state = .building(buffered: buffered)
        } else {
            state = .normal
        }
        return finished
    }
}
