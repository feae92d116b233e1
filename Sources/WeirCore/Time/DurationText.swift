/// Durations as Weir's config and flags write them: `250ms`, `5s`, `10m`, `1h`, `7d`
/// (also `us`, and combinations such as `1h30m`).
///
/// ```swift
/// let d = try DurationText.parse("250ms")      // .milliseconds(250)
/// DurationText.format(.seconds(90))            // "1m30s"
/// ```
public enum DurationText {
    /// Parses a duration; throws a message naming the text and what is expected.
    public static func parse(_ text: String) throws(WeirError) -> Duration {
        let ms = try parseMilliseconds(text)
        return .milliseconds(ms)
    }

    /// Parses a duration to whole milliseconds (sub-millisecond parts are rounded down).
    public static func parseMilliseconds(_ text: String) throws(WeirError) -> Int64 {
        let trimmed = text.trimmingWhitespace()
        func bad(_ why: String) -> WeirError {
            WeirError(.badArgument, "'\(trimmed.prefix(40))' is not a duration: \(why) (write e.g. 250ms, 5s, 10m, 1h, 7d)")
        }
        guard !trimmed.isEmpty else { throw bad("it is empty") }
        var totalMicros: Int64 = 0
        var bytes = Array(trimmed.utf8)[...]
        while !bytes.isEmpty {
            var number: Int64 = 0
            var digits = 0
            var fraction: Double = 0
            var fractionScale: Double = 1
            var seenDot = false
            while let b = bytes.first, (b >= 48 && b <= 57) || b == 46 {
                if b == 46 {
                    if seenDot { throw bad("two decimal points") }
                    seenDot = true
                } else if seenDot {
                    fractionScale /= 10
                    fraction += Double(b - 48) * fractionScale
                } else {
                    let (m, o1) = number.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int64(b - 48))
                    if o1 || o2 { throw bad("the number is too large") }
                    number = a
                }
                digits += 1
                bytes.removeFirst()
            }
            guard digits > 0 else { throw bad("a number must come first") }
            var unit = ""
            while let b = bytes.first, (b >= 97 && b <= 122) || (b >= 65 && b <= 90) {
                unit.append(Character(Unicode.Scalar(b)))
                bytes.removeFirst()
            }
            let micros: Int64
            switch unit {
            case "us", "µs": micros = 1
            case "ms": micros = 1_000
            case "s": micros = 1_000_000
            case "m", "min": micros = 60_000_000
            case "h": micros = 3_600_000_000
            case "d": micros = 86_400_000_000
            case "": throw bad("the unit is missing")
            default: throw bad("unknown unit '\(unit)'")
            }
            let (whole, o1) = number.multipliedReportingOverflow(by: micros)
            let part = whole.addingReportingOverflow(Int64(fraction * Double(micros)))
            let (sum, o2) = totalMicros.addingReportingOverflow(part.partialValue)
            if o1 || part.overflow || o2 { throw bad("it is too long") }
            totalMicros = sum
        }
        return totalMicros / 1_000
    }

    /// Writes a duration the way `parse` reads it, largest units first (`1m30s`, `250ms`).
    public static func format(_ duration: Duration) -> String {
        formatMilliseconds(duration.milliseconds)
    }

    /// Writes whole milliseconds the way `parse` reads them.
    public static func formatMilliseconds(_ milliseconds: Int64) -> String {
        if milliseconds == 0 { return "0s" }
        var rest = milliseconds.magnitude
        var out = milliseconds < 0 ? "-" : ""
        for (unit, size) in [("d", UInt64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if rest >= size {
                out += "\(rest / size)\(unit)"
                rest %= size
            }
        }
        return out
    }
}

extension Duration {
    /// Whole milliseconds in this duration, rounded toward zero.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
