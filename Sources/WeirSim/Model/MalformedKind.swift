/// The kinds of garbage a simulated device publishes now and then. Each is built so that
/// no valid reading can come out of it, whatever else the payload holds: the edge must
/// dead-letter it (or find nothing in it), and the cloud must never see it.
///
/// A payload *without* a timestamp is deliberately not among them: the edge gives such a
/// reading its receive time, which is valid and which the simulator cannot know, so it
/// could never be verified.
public enum MalformedKind: String, CaseIterable, Sendable, Hashable, Codable {
    /// Text that is not JSON at all (`temp=21.5 hum=40`).
    case notJSON = "not-json"
    /// A valid payload cut off before its end.
    case truncated
    /// `"NaN"`, `"Infinity"`, `"-Infinity"` as string values.
    case nonFiniteString = "nan-string"
    /// A bare `NaN` or a number that overflows a double (`1e999`).
    case nonFiniteNumber = "nan-number"
    /// A timestamp before 2000-01-01 (a clock reset to 1970), far in the future, negative,
    /// too large for 64 bits, or text that is no time at all.
    case absurdTimestamp = "bad-timestamp"
    /// A metric name longer than 128 bytes, or with characters outside `[A-Za-z0-9_.:/-]`.
    case badMetricName = "bad-metric-name"
    /// A device name (topic level) longer than 128 bytes.
    case longDeviceName = "long-device-name"
    /// Random bytes that are not UTF-8.
    case binary
    /// An empty payload.
    case empty

    /// The name used in flags and reports.
    public var name: String { rawValue }

    /// Builds one malformed message for `device` around a real sample time `ts`.
    func message(device: String, options: SimulationOptions, ts: Int64, metric: String,
                 using rng: inout SeededGenerator) -> (topic: String, payload: [UInt8]) {
        let topic = options.topic(for: device)
        switch self {
        case .notJSON:
            let texts = ["\(metric)=21.5 hum=40", "hello from \(device)", "<reading ts=\(ts)/>", "ts:\(ts),\(metric):1"]
            return (topic, Array(texts[Int(rng.next() % UInt64(texts.count))].utf8))
        case .truncated:
            let full = Array(#"{"ts": \#(ts), "\#(metric)": 21.5, "note_not_a_metric_length_pad": 1234.5}"#.utf8)
            // Any cut before the closing brace leaves invalid JSON.
            let cut = 1 + Int(rng.next() % UInt64(full.count - 2))
            return (topic, Array(full[..<cut]))
        case .nonFiniteString:
            let words = ["NaN", "Infinity", "-Infinity", "nan", "inf"]
            let word = words[Int(rng.next() % UInt64(words.count))]
            return (topic, Array(#"{"ts": \#(ts), "\#(metric)": "\#(word)"}"#.utf8))
        case .nonFiniteNumber:
            let numbers = ["NaN", "Infinity", "1e999", "-1e999"]
            let number = numbers[Int(rng.next() % UInt64(numbers.count))]
            return (topic, Array(#"{"ts": \#(ts), "\#(metric)": \#(number)}"#.utf8))
        case .absurdTimestamp:
            let stamps = [
                "86400000",                 // 1970-01-02: a clock reset after power loss
                "\(ts + 50 * 365 * 86_400_000)", // decades ahead
                "-1000",
                "1e30",                     // beyond Int64
                #""yesterday""#,
                #""2025-13-45T99:99:99Z""#,
            ]
            let stamp = stamps[Int(rng.next() % UInt64(stamps.count))]
            return (topic, Array(#"{"ts": \#(stamp), "\#(metric)": 21.5}"#.utf8))
        case .badMetricName:
            let names = [
                String(repeating: "m", count: 129 + Int(rng.next() % 200)),
                "temp erature", "t€mp", "temp\\u0000", "temp;drop table",
            ]
            let name = names[Int(rng.next() % UInt64(names.count))]
            return (topic, Array(#"{"ts": \#(ts), "\#(name)": 21.5}"#.utf8))
        case .longDeviceName:
            let longDevice = device + "-" + String(repeating: "x", count: 130 + Int(rng.next() % 100))
            return (options.topic(for: longDevice), Array(#"{"ts": \#(ts), "\#(metric)": 21.5}"#.utf8))
        case .binary:
            var bytes: [UInt8] = [0xFF, 0xFE]
            let count = 1 + Int(rng.next() % 64)
            for _ in 0..<count { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
            return (topic, bytes)
        case .empty:
            return (topic, [])
        }
    }

    /// Parses a comma-separated list of kind names (`all` for every kind).
    public static func parseList(_ text: String) -> [MalformedKind]? {
        if text == "all" { return allCases }
        var kinds: [MalformedKind] = []
        for part in text.split(separator: ",") {
            let name = part.filter { !$0.isWhitespace }
            guard let kind = MalformedKind(rawValue: name) else { return nil }
            kinds.append(kind)
        }
        return kinds
    }
}
