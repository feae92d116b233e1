import Foundation
import WeirCore

/// A small, fast, seedable random number generator (xoshiro256**, seeded through
/// SplitMix64), so a `--seed` gives the same simulation on every machine and every run.
///
/// Each device and each flaky behaviour draws from its own stream (`stream(_:_:)`), so
/// turning one knob up does not change what another knob decides or what values the
/// sensors report.
///
/// ```swift
/// var rng = SeededGenerator(seed: 42)
/// let x = Double.random(in: 0..<1, using: &rng)
/// ```
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// A generator whose whole sequence is fixed by `seed`.
    public init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        s0 = seeder.next()
        s1 = seeder.next()
        s2 = seeder.next()
        s3 = seeder.next()
    }

    /// An independent stream for one purpose (`"values"`, `"offline"`, ...) of one device.
    public static func stream(seed: UInt64, device: Int, _ purpose: String) -> SeededGenerator {
        // FNV-1a over the purpose keeps streams stable when new purposes are added.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in purpose.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        let mixed = seed ^ (UInt64(truncatingIfNeeded: device) &* 0x9E37_79B9_7F4A_7C15) ^ hash
        return SeededGenerator(seed: mixed)
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform double in `[0, 1)`.
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// `true` with probability `p`.
    public mutating func chance(_ p: Double) -> Bool {
        p > 0 && unit() < p
    }

    /// A normally distributed value (Box–Muller).
    public mutating func gaussian(mean: Double = 0, deviation: Double = 1) -> Double {
        let u1 = max(unit(), 0x1.0p-53)
        let u2 = unit()
        return mean + deviation * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
