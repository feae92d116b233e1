/// Finds whether a series' values are all decimals with few digits after the point, so
/// they can travel as integers `k` with `value == Double(k) / 10^d` bit for bit.
///
/// IEEE division is correctly rounded and both `k` (|k| < 2^53) and `10^d` (d ≤ 15) are
/// exact doubles, so `Double(k) / 10^d` is exactly the double a parser would produce for
/// the decimal text — the reason a value read as "21.5" comes back as the same bits.
/// −0.0, NaN, infinities, subnormals and full-precision noise are not scalable and stay
/// with the XOR encoding.
enum DecimalScaling {
    /// The most digits after the point the scaled encoding uses.
    static let maxDecimals = 15

    /// `10^d` for d in 0...maxDecimals, all exactly representable.
    static let powers: [Double] = [
        1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ]

    /// 2^53: integers below this magnitude are exact doubles.
    private static let exactLimit = 9_007_199_254_740_992.0

    /// The scaled integer for `value` at `scale = 10^d`, or nil when it does not round-trip exactly.
    @inline(__always)
    static func scaled(_ value: Double, scale: Double) -> Int64? {
        let r = (value * scale).rounded()
        guard r.magnitude < exactLimit else { return nil } // also false for NaN
        let k = Int64(r)
        return (Double(k) / scale).bitPattern == value.bitPattern ? k : nil
    }

    /// The smallest number of decimals that represents every value exactly, or nil.
    static func decimals(for values: UnsafeBufferPointer<Double>) -> Int? {
        var d = 0
        return powers.withUnsafeBufferPointer { p -> Int? in
            for v in values {
                while scaled(v, scale: p[d]) == nil {
                    d &+= 1
                    if d > maxDecimals { return nil }
                }
            }
            return d
        }
    }
}
