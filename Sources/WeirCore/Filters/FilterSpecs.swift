/// `range: {min: -50, max: 150}`: values outside are dead letters. Either bound may be
/// left out; both are inclusive.
public struct RangeSpec: Sendable, Hashable {
    public var min: Double?
    public var max: Double?

    /// Bounds, either of which may be left out.
    public init(min: Double? = nil, max: Double? = nil) {
        self.min = min
        self.max = max
    }
}

/// `deadband: {abs: 0.2, heartbeat: 60s}` or `{percent: 5}`: a reading passes when it
/// differs from the last reading this stage passed (for its series) by more than the band
/// — `abs` in the value's unit, or `percent` of the last passed value's magnitude (after a
/// 0 any change passes) — or when at least `heartbeatMs` of event time has gone by since
/// that reading. Exactly one of `abs` and `percent`.
public struct DeadbandSpec: Sendable, Hashable {
    public var abs: Double?
    public var percent: Double?
    public var heartbeatMs: Int64?

    /// A band of `abs` units or `percent` of the last passed value, and an optional heartbeat.
    public init(abs: Double? = nil, percent: Double? = nil, heartbeatMs: Int64? = nil) {
        self.abs = abs
        self.percent = percent
        self.heartbeatMs = heartbeatMs
    }
}

/// `downsample: {bucket: 10s, aggregate: mean}`: the readings of a series are held in
/// epoch-aligned buckets (`start = floor(ts / bucket) * bucket`) and come out as one
/// reading per bucket, at the bucket's start, with the aggregate as its value.
public struct DownsampleSpec: Sendable, Hashable {
    /// How a bucket's readings become one value.
    public enum Aggregate: String, Sendable, Hashable, CaseIterable {
        case mean, min, max
        /// The value of the reading with the latest event time (ties: the first to arrive).
        case last
    }

    /// The bucket size, in ms of event time.
    public var bucketMs: Int64
    /// How a bucket becomes one value.
    public var aggregate: Aggregate

    /// Buckets of `bucketMs` reduced with `aggregate`.
    public init(bucketMs: Int64, aggregate: Aggregate = .mean) {
        self.bucketMs = bucketMs
        self.aggregate = aggregate
    }
}
