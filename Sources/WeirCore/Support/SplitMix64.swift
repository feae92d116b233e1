/// SplitMix64: a small, fast, seedable generator whose sequence is the same on every
/// machine and every run — for deterministic tests, benchmarks and the simulator's seeds.
/// Not for anything that must be unpredictable.
///
/// ```swift
/// var rng = SplitMix64(seed: 42)
/// let x = Double.random(in: 0..<1, using: &rng)
/// ```
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    /// A generator whose whole sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The same as `init(seed:)`.
    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<n` (n > 0); the modulo bias is negligible for test-sized `n`.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
