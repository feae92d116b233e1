extension FilterEngine {
    /// A deadband stage's state, in line in its series record: the last value let
    /// through and the newest time among those, for the heartbeat.
    struct DeadbandState: Sendable {
        var has = false
        var value = 0.0
        var ts: Int64 = 0

        /// Whether a reading (`newTs`, `newValue`) passes; remembers it when it does.
        mutating func admit(ts newTs: Int64, value newValue: Double, abs: Double, fraction: Double, heartbeatMs: Int64) -> Bool {
            var pass = !has
            if !pass {
                let change = Swift.abs(newValue - value)
                if fraction < 0 {
                    pass = change > abs
                } else {
                    pass = value == 0 ? change > 0 : change > fraction * Swift.abs(value)
                }
            }
            if !pass && heartbeatMs > 0 && newTs &- ts >= heartbeatMs { pass = true }
            if pass {
                value = newValue
                ts = has ? Swift.max(ts, newTs) : newTs
                has = true
            }
            return pass
        }
    }
}
