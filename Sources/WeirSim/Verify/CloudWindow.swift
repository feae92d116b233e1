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

/// One device as `GET /v1/devices` lists it.
public struct CloudDevice: Sendable, Hashable, Codable {
    public var device: String
    public var last_seen: Int64?
    public var watermark: Int64?
    /// Distinct readings stored.
    public var readings: Int64
    /// Repeats discarded.
    public var duplicates: Int64?
    public var late: Int64?
    /// Repeats whose value differed from the stored one (never expected from the simulator).
    public var conflicts: Int64?
    /// Readings the edge reported as evicted before forwarding (its drop ledger).
    public var dropped_at_edge: Int64?

    public init(device: String, readings: Int64, duplicates: Int64? = nil, late: Int64? = nil, droppedAtEdge: Int64? = nil) {
        self.device = device
        self.readings = readings
        self.duplicates = duplicates
        self.late = late
        dropped_at_edge = droppedAtEdge
    }

    // Only the counts matter to the verifier; times it does not use may come in any form.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        device = try c.decode(String.self, forKey: .device)
        readings = try c.decode(Int64.self, forKey: .readings)
        last_seen = try? c.decodeIfPresent(Int64.self, forKey: .last_seen)
        watermark = try? c.decodeIfPresent(Int64.self, forKey: .watermark)
        duplicates = try c.decodeIfPresent(Int64.self, forKey: .duplicates)
        late = try c.decodeIfPresent(Int64.self, forKey: .late)
        conflicts = try c.decodeIfPresent(Int64.self, forKey: .conflicts)
        dropped_at_edge = try c.decodeIfPresent(Int64.self, forKey: .dropped_at_edge)
    }
}
