import Foundation

/// The wall clock in epoch milliseconds, rounded down: receive times, `last_seen`, ages in
/// `status`, the simulator's event times. Every program reads it here; code that tests
/// drive takes a `now:` parameter that defaults to it.
///
/// ```swift
/// let receivedAt = WallClock.nowMs()     // 1732540000123
/// ```
public enum WallClock {
    /// Now, in epoch milliseconds.
    public static func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
