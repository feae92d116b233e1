/// What `FilterChain.apply(_:into:)` decided for a batch of readings (one payload's):
/// one outcome per reading, in order, and the reasons of the dead letters among them.
///
/// The same decisions as `FilterChain.apply(_:)` one reading at a time, without copying
/// each kept reading into its verdict: the caller still has the readings it passed in.
///
/// ```swift
/// var results = FilterResults()
/// chain.apply(decoded.readings, into: &results)
/// var reasons = results.deadLetterReasons.makeIterator()
/// for (reading, outcome) in zip(decoded.readings, results.outcomes) {
///     switch outcome {
///     case .pass: keep(reading)
///     case .held: break
///     case .dropped(let reason): count(reason)
///     case .deadLetter: deadLetter(reading, reasons.next() ?? "")
///     }
/// }
/// ```
public struct FilterResults: Sendable {
    /// A `FilterVerdict` without its payload.
    public enum Outcome: Sendable, Hashable {
        /// Keep the reading.
        case pass
        /// A downsample stage took it into a bucket.
        case held
        /// Removed on purpose; count it under the reason.
        case dropped(FilterReason)
        /// Out of range: its reason is the next one in `deadLetterReasons`.
        case deadLetter
    }

    /// One outcome per reading of the last batch, in the batch's order.
    public internal(set) var outcomes: [Outcome] = []
    /// The reason of each `.deadLetter` outcome, in the same order as those outcomes.
    public internal(set) var deadLetterReasons: [String] = []

    /// Empty results; reuse one value across batches to keep its memory.
    public init() {}

    /// The verdicts `FilterChain.apply(_:)` would have given `readings`, the batch these
    /// results are for.
    public func verdicts(for readings: [Reading]) -> [FilterVerdict] {
        precondition(readings.count == outcomes.count, "results are for a batch of \(outcomes.count) readings, not \(readings.count)")
        var reasons = deadLetterReasons.makeIterator()
        return zip(readings, outcomes).map { reading, outcome in
            switch outcome {
            case .pass: return .pass(reading)
            case .held: return .held
            case .dropped(let reason): return .dropped(reason: reason)
            case .deadLetter: return .deadLetter(reason: reasons.next() ?? "")
            }
        }
    }
}
