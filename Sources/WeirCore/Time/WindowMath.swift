/// Tumbling windows aligned to the epoch: `start = floor(ts / size) * size`.
public enum WindowMath {
    /// The start of the window of `size` milliseconds that holds `ts` (floor, also for
    /// times before 1970).
    @inlinable
    public static func start(of ts: Int64, size: Int64) -> Int64 {
        precondition(size > 0, "window size must be positive")
        let q = ts / size
        let r = ts % size
        return (r < 0 ? q - 1 : q) * size
    }
}

/// A window's aggregates: count, sum, min, max and the first and last readings by event
/// time (ties keep the reading that arrived first).
public struct WindowAggregate: Hashable, Sendable, Codable {
    public var count: Int64
    public var sum: Double
    public var min: Double
    public var max: Double
    public var firstTs: Int64
    public var firstValue: Double
    public var lastTs: Int64
    public var lastValue: Double

    /// The aggregate of one reading.
    public init(ts: Int64, value: Double) {
        count = 1
        sum = value
        min = value
        max = value
        firstTs = ts
        firstValue = value
        lastTs = ts
        lastValue = value
    }

    public init(count: Int64, sum: Double, min: Double, max: Double,
                firstTs: Int64, firstValue: Double, lastTs: Int64, lastValue: Double) {
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.firstTs = firstTs
        self.firstValue = firstValue
        self.lastTs = lastTs
        self.lastValue = lastValue
    }

    /// Mean of the values, `sum / count`.
    public var mean: Double { sum / Double(count) }

    /// Folds one more reading in.
    @inlinable
    @inline(__always)
    public mutating func add(ts: Int64, value: Double) {
        count += 1
        sum += value
        if value < min { min = value }
        if value > max { max = value }
        if ts < firstTs { firstTs = ts; firstValue = value }
        if ts > lastTs { lastTs = ts; lastValue = value }
    }

    /// Folds another aggregate of the same window in (readings distinct from ours).
    public mutating func merge(_ other: WindowAggregate) {
        count += other.count
        sum += other.sum
        if other.min < min { min = other.min }
        if other.max > max { max = other.max }
        if other.firstTs < firstTs { firstTs = other.firstTs; firstValue = other.firstValue }
        if other.lastTs > lastTs { lastTs = other.lastTs; lastValue = other.lastValue }
    }
}
