/// A `"deviceGlob/metricGlob"` pattern of a filter rule, matched against `"device/metric"`
/// as one string: `*` matches any run of characters (including `/`, since names may
/// contain it), `?` exactly one. A pattern without `/` matches the metric of any device.
///
/// ```swift
/// let glob = try NameGlob("sensor-*/temp")
/// glob.matches(device: "sensor-7", metric: "temp")   // true
/// ```
public struct NameGlob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    private let bytes: [UInt8]

    /// Parses a pattern; throws when it is empty or holds characters no name can have.
    public init(_ pattern: String) throws(WeirError) {
        let source = Array(pattern.utf8)
        guard !source.isEmpty else { throw WeirError(.badConfig, "match pattern is empty (write e.g. \"*/temp\")") }
        for b in source where !(Reading.isNameByte(b) || b == UInt8(ascii: "*") || b == UInt8(ascii: "?")) {
            let shown = b >= 0x20 && b < 0x7F ? String(Character(Unicode.Scalar(b))) : "byte 0x\(String(b, radix: 16))"
            throw WeirError(.badConfig, "match pattern '\(pattern.prefix(80))' contains '\(shown)' (names are [A-Za-z0-9_.:/-], globs add * and ?)")
        }
        self.pattern = pattern
        self.bytes = source.contains(UInt8(ascii: "/")) ? source : Array("*/".utf8) + source
    }

    /// The pattern as written.
    public var description: String { pattern }

    /// Whether the series `device/metric` matches.
    public func matches(device: String, metric: String) -> Bool {
        matches(series: NameGlob.seriesText(device: device, metric: metric))
    }

    /// Whether the series whose `seriesText(device:metric:)` is `text` matches: for
    /// matching one series against many globs without building its text each time.
    func matches(series text: [UInt8]) -> Bool {
        NameGlob.match(bytes, text)
    }

    /// `device/metric` as the bytes globs are matched against.
    static func seriesText(device: String, metric: String) -> [UInt8] {
        var text: [UInt8] = []
        text.reserveCapacity(device.utf8.count + 1 + metric.utf8.count)
        text.append(contentsOf: device.utf8)
        text.append(UInt8(ascii: "/"))
        text.append(contentsOf: metric.utf8)
        return text
    }

    /// Iterative glob match with single-star backtracking: linear in practice, never
    /// exponential.
    static func match(_ p: [UInt8], _ t: [UInt8]) -> Bool {
        var pi = 0, ti = 0
        var starP = -1, starT = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == t[ti]) {
                pi += 1; ti += 1
            } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
                starP = pi; starT = ti; pi += 1
            } else if starP >= 0 {
                pi = starP + 1; starT += 1; ti = starT
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
