import WeirCore

/// One window as the cloud's query API returns it
/// (`GET /v1/devices/{device}/windows`).
public struct CloudWindow: Sendable, Hashable, Codable {
    /// A first or last reading of a window.
    public struct Point: Sendable, Hashable, Codable {
        public var ts: Int64
        public var value: Double

        public init(ts: Int64, value: Double) {
            self.ts = ts
            self.value = value
        }
    }

    public var start: Int64
    public var end: Int64
    public var count: Int64
    public var sum: Double
    public var min: Double
    public var max: Double
    public var mean: Double
    public var first: Point
    public var last: Point
    public var state: String?
    public var revision: Int64?
    public var late: Int64?

    public init(start: Int64, end: Int64, aggregate: WindowAggregate, state: String? = nil, revision: Int64? = nil, late: Int64? = nil) {
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

/// The body of `GET /v1/devices/{device}/windows`.
public struct CloudWindowList: Sendable, Hashable, Codable {
    public var device: String
    public var metric: String
    public var size_ms: Int64
    public var windows: [CloudWindow]
}
