extension FilterEngine {
    /// One single-purpose operation of a rule, reduced to plain numbers for the hot path.
    enum Op: Sendable {
        /// `rule`: the rule's index, for the dead-letter reason.
        case range(min: Double, max: Double, rule: Int)
        case dedup(windowMs: Int64)
        /// `fraction < 0`: an absolute band.
        case deadband(abs: Double, fraction: Double, heartbeatMs: Int64)
        /// `slot`: which of a device's rate-limit buckets.
        case rate(perMs: Double, burst: Double, slot: Int)
        case downsample(bucketMs: Int64, aggregate: DownsampleSpec.Aggregate)
    }

    /// An operation's kind and numbers, without an enum's payload to unpack.
    struct OpParams: Sendable {
        enum Kind: UInt8 { case range, dedup, deadband, rate, downsample }
        var kind: Kind
        /// range: min; deadband: abs; rate: tokens per ms.
        var x = 0.0
        /// range: max; deadband: fraction (< 0: absolute band); rate: burst.
        var y = 0.0
        /// dedup: window; deadband: heartbeat; downsample: bucket (ms).
        var n: Int64 = 0
        /// rate: which of a device's rate-limit buckets.
        var slot = 0

        init(_ op: Op) {
            switch op {
            case .range(let min, let max, _): kind = .range; x = min; y = max
            case .dedup(let windowMs): kind = .dedup; n = windowMs
            case .deadband(let abs, let fraction, let heartbeatMs): kind = .deadband; x = abs; y = fraction; n = heartbeatMs
            case .rate(let perMs, let burst, let slot): kind = .rate; x = perMs; y = burst; self.slot = slot
            case .downsample(let bucketMs, _): kind = .downsample; n = bucketMs
            }
        }
    }
}
