/// Numbers written as text, parsed from bytes without Foundation: exact integers and
/// correctly rounded doubles (fast path for the common short decimals, the standard
/// library's parser for the rest). Used by the line-protocol decoder.
enum DecimalText {
    /// `[-+]?digits[.digits][(e|E)[-+]?digits]` or `[-+]?.digits...`; no `inf`, `nan` or hex.
    static func float(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        var i = 0
        var negative = false
        if i < b.count && (b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+")) {
            negative = b[i] == UInt8(ascii: "-")
            i += 1
        }
        var digits = DecimalText.Digits()
        var count = 0
        while i < b.count, b[i] &- 48 < 10 {
            digits.appendInteger(b[i])
            count += 1
            i += 1
        }
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            while i < b.count, b[i] &- 48 < 10 {
                digits.appendFraction(b[i])
                count += 1
                i += 1
            }
        }
        guard count > 0 else { return nil }
        if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
            i += 1
            var expNegative = false
            if i < b.count && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) {
                expNegative = b[i] == UInt8(ascii: "-")
                i += 1
            }
            var e = 0
            var expDigits = 0
            while i < b.count, b[i] &- 48 < 10 {
                if e < 100_000 { e = e * 10 + Int(b[i] &- 48) }
                expDigits += 1
                i += 1
            }
            guard expDigits > 0 else { return nil }
            digits.exponent += expNegative ? -e : e
        }
        guard i == b.count else { return nil }
        if let d = digits.fastDouble { return negative ? -d : d }
        // The grammar is checked above, so the standard library sees only plain decimals.
        return Double(String(decoding: b, as: UTF8.self))
    }

    /// The digits of a decimal number gathered as `mantissa × 10^exponent`, keeping the
    /// first 19 significant digits (what a UInt64 holds); shared by this type and
    /// `JSONScanner`, which check the grammar around it.
    struct Digits {
        var mantissa: UInt64 = 0
        var significant = 0
        var exponent = 0
        /// Whether a non-zero digit was dropped (the mantissa is then not exact).
        var truncated = false

        /// Adds an ASCII digit before the decimal point.
        @inline(__always)
        mutating func appendInteger(_ digit: UInt8) {
            let d = UInt64(digit &- 48)
            if significant < 19 {
                mantissa = mantissa &* 10 &+ d
                if mantissa != 0 { significant += 1 }
            } else {
                exponent += 1
                if d != 0 { truncated = true }
            }
        }

        /// Adds an ASCII digit after the decimal point.
        @inline(__always)
        mutating func appendFraction(_ digit: UInt8) {
            let d = UInt64(digit &- 48)
            if significant < 19 {
                mantissa = mantissa &* 10 &+ d
                if mantissa != 0 { significant += 1 }
                exponent -= 1
            } else if d != 0 {
                truncated = true
            }
        }

        /// The correctly rounded magnitude when Clinger's fast path applies (the mantissa
        /// and the power of ten are both exact doubles, so one multiplication or division
        /// rounds correctly), else `nil` (the caller falls back to the standard library).
        @inline(__always)
        var fastDouble: Double? {
            guard !truncated && mantissa < (1 << 53) && exponent >= -22 && exponent <= 22 else { return nil }
            let d = Double(mantissa)
            return exponent >= 0 ? d * Digits.powersOfTen[exponent] : d / Digits.powersOfTen[-exponent]
        }

        static let powersOfTen: [Double] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
            1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ]
    }

    /// An optionally signed run of decimal digits that fits in an Int64 (or UInt64 when
    /// `signed` is false, returned as a Double-safe UInt64).
    static func integer(_ b: UnsafeBufferPointer<UInt8>, signed: Bool) -> UInt64OrInt64? {
        var i = 0
        var negative = false
        if signed && i < b.count && (b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+")) {
            negative = b[i] == UInt8(ascii: "-")
            i += 1
        }
        guard i < b.count else { return nil }
        var v: UInt64 = 0
        while i < b.count {
            let d = b[i] &- 48
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1 && !o2 else { return nil }
            v = a
            i += 1
        }
        if !signed { return .unsigned(v) }
        if negative {
            guard v <= UInt64(Int64.max) + 1 else { return nil }
            return .signed(v == UInt64(Int64.max) + 1 ? Int64.min : -Int64(v))
        }
        guard v <= UInt64(Int64.max) else { return nil }
        return .signed(Int64(v))
    }

    enum UInt64OrInt64 {
        case signed(Int64)
        case unsigned(UInt64)
    }

    /// `t T true True TRUE f F false False FALSE`.
    static func boolean(_ b: UnsafeBufferPointer<UInt8>) -> Bool? {
        switch String(decoding: b, as: UTF8.self) {
        case "t", "T", "true", "True", "TRUE": return true
        case "f", "F", "false", "False", "FALSE": return false
        default: return nil
        }
    }
}

extension Double {
    init(_ value: DecimalText.UInt64OrInt64) {
        switch value {
        case .signed(let v): self = Double(v)
        case .unsigned(let v): self = Double(v)
        }
    }
}
