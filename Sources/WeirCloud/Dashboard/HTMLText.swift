import Foundation

/// Builds an HTML page as UTF-8 text: appends markup as given and escapes what comes from
/// data (device and metric names, numbers as text).
///
/// ```swift
/// var html = HTMLText()
/// html.raw("<td>"); html.text(device); html.raw("</td>")
/// ```
struct HTMLText {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 64 * 1024) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends markup (never data).
    mutating func raw(_ markup: String) {
        bytes.append(contentsOf: markup.utf8)
    }

    /// Appends text or an attribute value, escaped.
    mutating func text(_ value: String) {
        for b in value.utf8 {
            switch b {
            case UInt8(ascii: "&"): bytes.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): bytes.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): bytes.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): bytes.append(contentsOf: "&quot;".utf8)
            case UInt8(ascii: "'"): bytes.append(contentsOf: "&#39;".utf8)
            default: bytes.append(b)
            }
        }
    }

    mutating func int(_ value: Int64) {
        raw(String(value))
    }

    /// A coordinate with one decimal (SVG).
    mutating func coordinate(_ value: Double) {
        let tenths = (value * 10).rounded()
        guard tenths.isFinite else { raw("0"); return }
        let whole = Int64(tenths)
        if whole < 0 && whole > -10 { raw("-") }
        raw(String(whole / 10))
        let fraction = abs(whole % 10)
        if fraction != 0 {
            raw(".")
            raw(String(fraction))
        }
    }
}

/// How the dashboard writes numbers, times and ages.
enum DashboardFormat {
    /// `2026-12-06 01:02:03` (UTC).
    static func time(_ ms: Int64) -> String {
        var seconds = time_t(ms / 1000)
        if ms < 0 && ms % 1000 != 0 { seconds -= 1 }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// `42 s`, `5 min`, `3 h`, `2 d`.
    static func age(_ ms: Int64) -> String {
        let s = max(0, ms / 1000)
        if s < 120 { return "\(s) s" }
        if s < 7_200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3_600) h" }
        return "\(s / 86_400) d"
    }

    /// A value for a tooltip: up to 6 significant digits.
    static func value(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "∞" : "−∞") }
        return String(format: "%.6g", v)
    }

    /// An axis label: four significant digits.
    static func axis(_ v: Double) -> String {
        String(format: "%.4g", v)
    }

    static func percent(_ fraction: Double) -> String {
        String(format: "%.1f %%", fraction * 100)
    }
}
