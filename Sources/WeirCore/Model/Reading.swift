/// One measurement from one device: the unit everything in Weir carries.
///
/// A reading's identity is `(device, metric, ts)`; the same identity arriving again is a
/// duplicate, and a duplicate with another value is a conflict (the first value stays).
///
/// ```swift
/// let r = Reading(device: "d1", metric: "temp", ts: 1_732_540_000_123, value: 21.5)
/// try r.validate()
/// ```
public struct Reading: Hashable, Sendable, Codable {
    /// Device name: 1–128 bytes of `[A-Za-z0-9_.:/-]`.
    public var device: String
    /// Metric name: same alphabet and length as `device`.
    public var metric: String
    /// Event time from the device, milliseconds since the Unix epoch.
    public var ts: Int64
    /// A finite value; booleans are carried as 0 or 1.
    public var value: Double

    public init(device: String, metric: String, ts: Int64, value: Double) {
        self.device = device
        self.metric = metric
        self.ts = ts
        self.value = value
    }

    /// The identity that deduplication keys on.
    public var identity: ReadingIdentity {
        ReadingIdentity(device: device, metric: metric, ts: ts)
    }

    /// The series this reading belongs to.
    public var series: SeriesKey {
        SeriesKey(device: device, metric: metric)
    }
}

/// `(device, metric, ts)`: two readings with the same identity are the same reading.
public struct ReadingIdentity: Hashable, Sendable {
    public var device: String
    public var metric: String
    public var ts: Int64

    public init(device: String, metric: String, ts: Int64) {
        self.device = device
        self.metric = metric
        self.ts = ts
    }
}

/// `(device, metric)`: one time series.
public struct SeriesKey: Hashable, Sendable, Comparable, Codable {
    public var device: String
    public var metric: String

    public init(device: String, metric: String) {
        self.device = device
        self.metric = metric
    }

    public static func < (lhs: SeriesKey, rhs: SeriesKey) -> Bool {
        (lhs.device, lhs.metric) < (rhs.device, rhs.metric)
    }
}
