import Foundation

/// The wall clock in epoch milliseconds: event times of simulated readings start here.
public enum WallClock {
    /// Now, epoch ms.
    public static func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
