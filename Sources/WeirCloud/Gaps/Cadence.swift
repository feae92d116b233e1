import WeirCore

/// A series' nominal interval between readings, learned from its recent windows.
///
/// ```swift
/// let cadence = Cadence.learn(from: lastWindows)   // 10_000 for a reading every 10 s
/// ```
///
/// Samples are intervals the windows reveal exactly or on average: between two consecutive
/// non-empty windows, `next.first − previous.last` is the interval between two consecutive
/// readings; inside a window of `n ≥ 2` readings, `(last − first) / (n − 1)` is their mean
/// interval. The cadence is the median sample. A series with fewer than ``minimumSamples``
/// samples is too young and has none; so has an irregular one, whose middle half of samples
/// spans more than a factor ``maximumSpread``.
public enum Cadence {
    public static let minimumSamples = 8
    public static let maximumSpread = 2.0
    /// How many of a series' newest windows are looked at.
    public static let windowsLooked = 64

    /// The cadence in ms from windows of one series and size, ascending; `nil` when too
    /// young or too irregular.
    public static func learn(from windows: some Collection<WindowRecord>) -> Int64? {
        var samples: [Double] = []
        samples.reserveCapacity(windows.count * 2)
        var previous: WindowRecord?
        for window in windows {
            let a = window.aggregate
            if a.count >= 2 { samples.append(Double(a.lastTs - a.firstTs) / Double(a.count - 1)) }
            if let previous { samples.append(Double(a.firstTs - previous.aggregate.lastTs)) }
            previous = window
        }
        samples.removeAll { $0 <= 0 }
        guard samples.count >= minimumSamples else { return nil }
        samples.sort()
        let q1 = samples[samples.count / 4]
        let q3 = samples[(samples.count * 3) / 4]
        guard q3 <= q1 * maximumSpread else { return nil }
        let median = samples[samples.count / 2]
        return max(1, Int64(median.rounded()))
    }

    /// Readings a window of `sizeMs` should hold at `cadenceMs` (two decimals).
    public static func expected(sizeMs: Int64, cadenceMs: Int64) -> Double {
        (Double(sizeMs) / Double(cadenceMs) * 100).rounded() / 100
    }

    /// `count / expected`, capped at 1.
    public static func completeness(count: Int64, expected: Double) -> Double {
        guard expected > 0 else { return 1 }
        return min(1, (Double(count) / expected * 1000).rounded() / 1000)
    }
}

/// An interval without readings longer than `gap_factor` × the series' cadence.
public struct Gap: Sendable, Hashable {
    public enum Cause: String, Sendable {
        /// The edge reported readings of the series lost in this interval (drop ledger).
        case droppedAtEdge = "dropped_at_edge"
        /// The device was silent, or its data never came.
        case noData = "no_data"
    }

    /// The last reading before the gap, epoch ms.
    public var from: Int64
    /// The first reading after it.
    public var to: Int64
    public var cause: Cause
    /// Readings the edge reported lost in the interval (0 for `no_data`).
    public var dropped: Int64

    public init(from: Int64, to: Int64, cause: Cause, dropped: Int64) {
        self.from = from
        self.to = to
        self.cause = cause
        self.dropped = dropped
    }
}

/// One row of the edge's drop ledger for a series.
public struct EdgeDrop: Sendable, Hashable {
    public var from: Int64
    public var to: Int64
    public var count: Int64

    public init(from: Int64, to: Int64, count: Int64) {
        self.from = from
        self.to = to
        self.count = count
    }
}

/// Finds gaps in a series from its windows (and, inside a window, its raw readings).
public enum GapFinder {
    /// Intervals between consecutive readings longer than `threshold`, from windows of one
    /// size, ascending. `readingsInside` gives a window's reading times when the window may
    /// hide a gap (its readings spread wider than `count` readings at the cadence explain);
    /// it may return `nil` (raw readings pruned), and then that window is taken as it is.
    public static func gaps(windows: [WindowRecord], cadenceMs: Int64, threshold: Int64,
                            readingsInside: (WindowRecord) throws -> [Int64]?) rethrows -> [(from: Int64, to: Int64)] {
        var found: [(from: Int64, to: Int64)] = []
        var previousLast: Int64?
        for window in windows {
            let a = window.aggregate
            if let previousLast, a.firstTs - previousLast > threshold {
                found.append((previousLast, a.firstTs))
            }
            // `count` readings at the cadence span (count − 1) × cadence; a wider spread by
            // more than half the threshold may hide one.
            if a.count >= 2, a.lastTs - a.firstTs - (a.count - 1) * cadenceMs > threshold / 2,
               let times = try readingsInside(window) {
                for (earlier, later) in zip(times, times.dropFirst()) where later - earlier > threshold {
                    found.append((earlier, later))
                }
            }
            previousLast = a.lastTs
        }
        return found
    }

    /// Gives each gap its cause: `dropped_at_edge` with the reported count when it overlaps
    /// drop-ledger rows, else `no_data`.
    public static func classify(_ intervals: [(from: Int64, to: Int64)], drops: [EdgeDrop]) -> [Gap] {
        intervals.map { interval in
            let overlapping = drops.filter { $0.from < interval.to && $0.to > interval.from }
            let dropped = overlapping.reduce(0) { $0 + $1.count }
            return Gap(from: interval.from, to: interval.to, cause: overlapping.isEmpty ? .noData : .droppedAtEdge, dropped: dropped)
        }
    }
}
