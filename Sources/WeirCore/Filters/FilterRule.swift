/// One entry of the edge's `filters:` list: which series it applies to and which stages
/// it runs. Stages run in a fixed order — `range`, `dedup`, `deadband`, `rate_limit`,
/// `downsample` — and the first that removes a reading decides its verdict.
///
/// ```swift
/// let rule = FilterRule(match: "*/temp",
///                       range: RangeSpec(min: -50, max: 150),
///                       deadband: DeadbandSpec(abs: 0.2, heartbeatMs: 60_000))
/// try rule.validate()
/// ```
public struct FilterRule: Sendable, Hashable {
    /// `"deviceGlob/metricGlob"`, matched against `"device/metric"` as a whole; `*` is any
    /// run of characters (including `/`), `?` one character. A pattern without `/` is a
    /// metric glob for every device (`"temp"` is `"*/temp"`).
    public var match: String
    /// Values outside `[min, max]` are dead letters.
    public var range: RangeSpec?
    /// A reading whose identity was seen within this span of the series' newest event
    /// time is dropped.
    public var dedupWindowMs: Int64?
    /// Drops readings that moved less than the band since the last one passed.
    public var deadband: DeadbandSpec?
    /// At most this many readings per device per second of event time (token bucket with
    /// a burst of one second's worth, at least one).
    public var rateLimitPerSecond: Double?
    /// Holds readings and emits one aggregate per bucket.
    public var downsample: DownsampleSpec?

    /// A rule for the series `match` selects, with the stages given (none: it does nothing).
    public init(match: String, range: RangeSpec? = nil, dedupWindowMs: Int64? = nil, deadband: DeadbandSpec? = nil,
                rateLimitPerSecond: Double? = nil, downsample: DownsampleSpec? = nil) {
        self.match = match
        self.range = range
        self.dedupWindowMs = dedupWindowMs
        self.deadband = deadband
        self.rateLimitPerSecond = rateLimitPerSecond
        self.downsample = downsample
    }

    /// Checks the rule; the error names the setting and the problem (the config loader
    /// adds which rule).
    public func validate() throws(WeirError) {
        func bad(_ message: String) -> WeirError { WeirError(.badConfig, "filter '\(match.prefix(80))': \(message)") }
        do { _ = try NameGlob(match) } catch { throw bad(error.message) }
        if let range {
            if let min = range.min, !min.isFinite { throw bad("range.min must be a finite number") }
            if let max = range.max, !max.isFinite { throw bad("range.max must be a finite number") }
            if let min = range.min, let max = range.max, min > max { throw bad("range.min \(min) is above range.max \(max)") }
            if range.min == nil && range.max == nil { throw bad("range needs min, max or both") }
        }
        if let dedupWindowMs, dedupWindowMs <= 0 || dedupWindowMs > FilterRule.maxSpanMs {
            throw bad("dedup window must be between 1ms and 365d")
        }
        if let deadband {
            switch (deadband.abs, deadband.percent) {
            case (nil, nil): throw bad("deadband needs abs or percent")
            case (.some, .some): throw bad("deadband takes abs or percent, not both")
            case (let abs?, nil) where !(abs >= 0 && abs.isFinite): throw bad("deadband.abs must be a number ≥ 0")
            case (nil, let pct?) where !(pct >= 0 && pct.isFinite): throw bad("deadband.percent must be a number ≥ 0")
            default: break
            }
            if let hb = deadband.heartbeatMs, hb <= 0 || hb > FilterRule.maxSpanMs {
                throw bad("deadband.heartbeat must be between 1ms and 365d")
            }
        }
        if let rate = rateLimitPerSecond, !(rate > 0 && rate.isFinite) {
            throw bad("rate_limit must be a number of readings per second above 0")
        }
        if let downsample, downsample.bucketMs <= 0 || downsample.bucketMs > FilterRule.maxSpanMs {
            throw bad("downsample bucket must be between 1ms and 365d")
        }
    }

    /// The longest dedup window, heartbeat or bucket accepted (365 days).
    public static let maxSpanMs: Int64 = 365 * 86_400_000
}
