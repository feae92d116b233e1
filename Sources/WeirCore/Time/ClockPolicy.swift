/// What the edge does with a device's timestamp that cannot be right: further than
/// `maxSkewMs` ahead of the edge's receive time, or before 2000-01-01 (a device whose
/// clock reset to 1970 after a power loss).
///
/// `reject` (the default) sends the reading to the dead letters; `receive-time` replaces
/// its time with the receive time and keeps the original in a note for the dead-letter
/// table. Readings that came without a time were already stamped with the receive time
/// by the decoder and always pass.
///
/// ```swift
/// let policy = ClockPolicy(maxSkewMs: 300_000, onBad: .receiveTime)
/// switch policy.check(reading, receivedAt: now) {
/// case .ok(let r): accept(r)
/// case .replaced(let r, let note): accept(r); noteClockFix(note)
/// case .rejected(let reason): deadLetter(reason)
/// }
/// ```
public struct ClockPolicy: Sendable, Hashable {
    /// What to do with a bad timestamp (config `on_bad_timestamp`: `reject | receive-time`).
    public enum OnBadTimestamp: String, Sendable, Hashable {
        case reject
        case receiveTime = "receive-time"
    }

    /// How far ahead of the receive time a timestamp may be (config `max_clock_skew`).
    public var maxSkewMs: Int64
    /// What happens to a bad timestamp (config `on_bad_timestamp`).
    public var onBad: OnBadTimestamp

    /// 2000-01-01T00:00:00Z in epoch ms: anything earlier is a reset clock.
    public static let earliestValidTs: Int64 = 946_684_800_000

    /// A policy allowing `maxSkewMs` into the future, handling bad timestamps by `onBad`.
    public init(maxSkewMs: Int64 = 300_000, onBad: OnBadTimestamp = .reject) {
        self.maxSkewMs = maxSkewMs
        self.onBad = onBad
    }

    /// Judges one reading's timestamp against the edge's receive time (epoch ms).
    public func check(_ reading: Reading, receivedAt: Int64) -> ClockVerdict {
        guard let problem = problem(ts: reading.ts, receivedAt: receivedAt) else { return .ok(reading) }
        let what = "\(reading.device)/\(reading.metric): timestamp \(reading.ts) (\(RFC3339.format(reading.ts))) \(problem)"
        switch onBad {
        case .reject:
            return .rejected(reason: what)
        case .receiveTime:
            var fixed = reading
            fixed.ts = receivedAt
            return .replaced(fixed, note: what + "; replaced by the receive time \(receivedAt) (\(RFC3339.format(receivedAt)))")
        }
    }

    /// Why `ts` is a bad timestamp, or `nil` when it is fine.
    public func problem(ts: Int64, receivedAt: Int64) -> String? {
        if ts < ClockPolicy.earliestValidTs {
            return "is before 2000-01-01 (device clock reset?)"
        }
        let (limit, overflow) = receivedAt.addingReportingOverflow(maxSkewMs)
        if !overflow && ts > limit {
            return "is \(ts - receivedAt) ms ahead of the receive time (max_clock_skew \(maxSkewMs) ms)"
        }
        return nil
    }
}

/// The outcome of `ClockPolicy.check`.
public enum ClockVerdict: Sendable, Hashable {
    /// The timestamp is plausible; the reading is unchanged.
    case ok(Reading)
    /// The timestamp was bad and replaced by the receive time; `note` keeps the original
    /// (for the dead-letter table and logs).
    case replaced(Reading, note: String)
    /// The timestamp was bad; the reading goes to the dead letters with `reason`.
    case rejected(reason: String)
}
