/// Reads numbers out of a Prometheus text exposition (`/metrics`).
public struct PrometheusText: Sendable {
    private var samples: [String: Double] = [:]

    /// Parses the text; lines it does not understand are skipped.
    public init(_ text: String) {
        for line in text.split(separator: "\n") {
            guard let first = line.first, first != "#" else { continue }
            // name{labels} value [timestamp]
            let nameEnd = line.firstIndex { $0 == "{" || $0 == " " } ?? line.endIndex
            let name = String(line[..<nameEnd])
            var rest = line[nameEnd...]
            if rest.first == "{" {
                guard let close = rest.lastIndex(of: "}") else { continue }
                rest = rest[rest.index(after: close)...]
            }
            let fields = rest.split(separator: " ")
            guard let valueText = fields.first, let value = Double(valueText) else { continue }
            samples[name, default: 0] += value
        }
    }

    /// The sum of every sample of metric `name` (over all label sets), or `nil` if absent.
    public func value(_ name: String) -> Double? {
        samples[name]
    }
}
