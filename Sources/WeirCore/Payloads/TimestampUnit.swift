/// The unit of an epoch timestamp written as a number: `s`, `ms`, `us` or `ns` in config
/// (`ts_unit` for `json`, `precision` for `line`).
///
/// ```swift
/// TimestampUnit(rawValue: "us")                       // .microseconds
/// TimestampUnit.seconds.milliseconds(fromInteger: 1_732_540_000)   // 1_732_540_000_000
/// ```
public enum TimestampUnit: String, Sendable, Hashable, CaseIterable {
    case seconds = "s"
    case milliseconds = "ms"
    case microseconds = "us"
    case nanoseconds = "ns"

    /// Converts an integer epoch time in this unit to epoch milliseconds, rounding to the
    /// nearest millisecond (halves away from zero). `nil` when the result does not fit in
    /// an Int64.
    @inlinable
    public func milliseconds(fromInteger value: Int64) -> Int64? {
        switch self {
        case .milliseconds:
            return value
        case .seconds:
            let (r, overflow) = value.multipliedReportingOverflow(by: 1000)
            return overflow ? nil : r
        case .microseconds:
            return TimestampUnit.divideRounded(value, by: 1_000)
        case .nanoseconds:
            return TimestampUnit.divideRounded(value, by: 1_000_000)
        }
    }

    /// Converts an epoch time in this unit, written with a fraction or exponent, to epoch
    /// milliseconds rounded to the nearest. `nil` when it is not finite or out of range.
    @inlinable
    public func milliseconds(fromDouble value: Double) -> Int64? {
        let ms: Double
        switch self {
        case .seconds: ms = value * 1000
        case .milliseconds: ms = value
        case .microseconds: ms = value / 1_000
        case .nanoseconds: ms = value / 1_000_000
        }
        let rounded = ms.rounded(.toNearestOrAwayFromZero)
        // 2^63 is exactly representable; anything at or beyond it does not fit.
        guard rounded.isFinite, rounded > -9.223372036854775e18, rounded < 9.223372036854775e18 else { return nil }
        return Int64(rounded)
    }

    @usableFromInline
    static func divideRounded(_ value: Int64, by divisor: Int64) -> Int64 {
        let q = value / divisor
        let r = value % divisor
        if r * 2 >= divisor { return q + 1 }
        if r * 2 <= -divisor { return q - 1 }
        return q
    }
}
