import WeirCore

/// A window as the truth says it must be: its aggregate, and the magnitude of what was
/// summed (`Σ|value|`), which scales the tolerance for `sum` and `mean`.
public struct ExpectedWindow: Sendable, Hashable {
    public var start: Int64
    public var aggregate: WindowAggregate
    /// Sum of the absolute values; a sum of mixed signs can cancel to near zero, so the
    /// tolerance is relative to this rather than to the sum itself.
    public var magnitude: Double

    public init(start: Int64, aggregate: WindowAggregate, magnitude: Double) {
        self.start = start
        self.aggregate = aggregate
        self.magnitude = magnitude
    }

    /// Tumbling windows of `size` ms for readings of one series, keyed by start.
    public static func windows(of readings: some Sequence<Reading>, size: Int64) -> [Int64: ExpectedWindow] {
        var windows: [Int64: ExpectedWindow] = [:]
        for reading in readings {
            let start = WindowMath.start(of: reading.ts, size: size)
            if var window = windows[start] {
                window.aggregate.add(ts: reading.ts, value: reading.value)
                window.magnitude += abs(reading.value)
                windows[start] = window
            } else {
                windows[start] = ExpectedWindow(start: start, aggregate: WindowAggregate(ts: reading.ts, value: reading.value),
                                                magnitude: abs(reading.value))
            }
        }
        return windows
    }
}
