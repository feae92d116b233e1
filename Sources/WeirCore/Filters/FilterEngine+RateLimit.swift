extension FilterEngine {
    /// A device's rate-limit bucket for one rule: full (`burst` tokens) until its first
    /// reading, refilled by event time.
    struct TokenBucket: Sendable {
        var tokens: Double
        /// The newest time seen; `Int64.min` before the first reading.
        var lastTs = Int64.min

        init(burst: Double) { tokens = burst }

        @inline(__always)
        mutating func take(ts: Int64, perMs: Double, capacity: Double) -> Bool {
            if ts > lastTs {
                if lastTs != .min { tokens = Swift.min(capacity, tokens + Double(ts &- lastTs) * perMs) }
                lastTs = ts
            }
            if tokens >= 1 {
                tokens -= 1
                return true
            }
            return false
        }
    }
}
