import WeirCore

/// The body of `GET /v1/devices/{device}/windows` (DESIGN.md, "Query API"): weir-cloud
/// writes it, weir-sim's verifier, the tests and the benchmarks read it.
///
/// ```swift
/// let answer = try JSONDecoder().decode(WindowsAnswer.self, from: body)
/// for window in answer.windows where window.state == .closed { print(window.start, window.mean) }
/// ```
public struct WindowsAnswer: Codable, Sendable, Hashable {
    /// A window's first or last reading.
    public struct Point: Codable, Sendable, Hashable {
        public var ts: Int64
        public var value: Double

        public init(ts: Int64, value: Double) {
            self.ts = ts
            self.value = value
        }
    }

    /// One tumbling window: its aggregates, whether it is still open, and how late
    /// readings changed it.
    public struct Window: Codable, Sendable, Hashable {
        public var start: Int64
        public var end: Int64
        public var count: Int64
        public var sum: Double
        public var min: Double
        public var max: Double
        public var mean: Double
        public var first: Point
        public var last: Point
        public var state: WindowState
        /// How many batches changed the window after it had closed.
        public var revision: Int64
        /// How many late readings it holds.
        public var late: Int64
        /// Readings the series' cadence expects in the window (when a cadence is known).
        public var expected: Double?
        /// `count / expected`, capped at 1.
        public var completeness: Double?

        /// The window `[start, end)` holding `aggregate`.
        public init(start: Int64, end: Int64, aggregate: WindowAggregate, state: WindowState = .open,
                    revision: Int64 = 0, late: Int64 = 0) {
            self.start = start
            self.end = end
            count = aggregate.count
            sum = aggregate.sum
            min = aggregate.min
            max = aggregate.max
            mean = aggregate.mean
            first = Point(ts: aggregate.firstTs, value: aggregate.firstValue)
            last = Point(ts: aggregate.lastTs, value: aggregate.lastValue)
            self.state = state
            self.revision = revision
            self.late = late
        }
    }

    public var device: String
    public var metric: String
    public var sizeMs: Int64
    /// The series' learned cadence, when known.
    public var cadenceMs: Int64?
    public var windows: [Window]

    public init(device: String, metric: String, sizeMs: Int64, cadenceMs: Int64? = nil, windows: [Window]) {
        self.device = device
        self.metric = metric
        self.sizeMs = sizeMs
        self.cadenceMs = cadenceMs
        self.windows = windows
    }

    enum CodingKeys: String, CodingKey {
        case device, metric, windows
        case sizeMs = "size_ms"
        case cadenceMs = "cadence_ms"
    }
}
