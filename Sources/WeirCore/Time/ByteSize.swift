/// Sizes as Weir's config writes them: `512MiB`, `1GiB`, `64KiB`, `16MB`, `1000` (bytes).
///
/// ```swift
/// try ByteSize.parse("1GiB")   // 1_073_741_824
/// ```
public enum ByteSize {
    /// Parses a size in bytes; binary (`KiB`, `MiB`, `GiB`, `TiB`) and decimal (`KB`, `MB`,
    /// `GB`, `TB`) units, or a bare number of bytes (`B` optional).
    public static func parse(_ text: String) throws(WeirError) -> Int64 {
        let trimmed = text.trimmingWhitespace()
        func bad(_ why: String) -> WeirError {
            WeirError(.badArgument, "'\(trimmed.prefix(40))' is not a size: \(why) (write e.g. 512MiB, 1GiB, 64KiB)")
        }
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        guard !digits.isEmpty, let number = Double(digits), number >= 0 else { throw bad("a number must come first") }
        let unit = trimmed.dropFirst(digits.count).trimmingWhitespace()
        let factor: Double
        switch unit.lowercased() {
        case "", "b": factor = 1
        case "kib", "k": factor = 1024
        case "mib", "m": factor = 1024 * 1024
        case "gib", "g": factor = 1024 * 1024 * 1024
        case "tib", "t": factor = 1024 * 1024 * 1024 * 1024
        case "kb": factor = 1e3
        case "mb": factor = 1e6
        case "gb": factor = 1e9
        case "tb": factor = 1e12
        default: throw bad("unknown unit '\(unit)'")
        }
        let bytes = (number * factor).rounded()
        guard bytes < 9.2e18 else { throw bad("it is too large") }
        return Int64(bytes)
    }

    /// Writes a byte count with a binary unit, e.g. `1.5 MiB`.
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var index = 0
        while abs(value) >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        if index == 0 { return "\(bytes) B" }
        let rounded = (value * 10).rounded() / 10
        return "\(rounded) \(units[index])"
    }
}
