import NIOCore

/// Appends JSON straight into a `ByteBuffer`, for answers with thousands of rows (windows,
/// changes): Foundation's `JSONEncoder` builds a dictionary per object and sorts its keys,
/// which made the windows API serve about 8,000 windows a second (issue 16).
///
/// ```swift
/// var json = JSONWriter()
/// json.raw("{\"count\":"); json.int(3); json.raw("}")
/// let body = json.buffer
/// ```
///
/// The caller writes the punctuation; the writer gets numbers and strings right: integers
/// without allocation, doubles in Swift's shortest round-trip form, non-finite doubles as
/// the strings `"Infinity"`, `"-Infinity"`, `"NaN"` (as ``CloudJSON`` writes them), strings
/// escaped as RFC 8259 requires.
struct JSONWriter {
    var buffer: ByteBuffer

    init(capacity: Int = 4096) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Appends ASCII text as is (keys, punctuation).
    @inline(__always) mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { buffer.writeBytes($0) }
    }

    /// Appends an integer.
    mutating func int(_ value: Int64) {
        if value >= 0 && value < 10 {
            buffer.writeInteger(UInt8(48 + value))
            return
        }
        // Twenty digits and a sign at most; written backwards into a stack tuple.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var magnitude = value.magnitude
        withUnsafeMutableBytes(of: &digits) { scratch in
            var at = scratch.count
            repeat {
                at -= 1
                scratch[at] = UInt8(48 + magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                at -= 1
                scratch[at] = UInt8(ascii: "-")
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[at...]))
        }
    }

    /// Appends a double in Swift's shortest round-trip form (`21.5`, `21.0`, `1e-05`).
    mutating func double(_ value: Double) {
        guard value.isFinite else {
            if value.isNaN { raw("\"NaN\"") } else if value > 0 { raw("\"Infinity\"") } else { raw("\"-Infinity\"") }
            return
        }
        // `description` is Swift's shortest round-trip form ("21.5", "1e-05", "5e+20"),
        // all valid JSON numbers; it fits a small string, so it does not allocate.
        var text = value.description
        text.withUTF8 { buffer.writeBytes($0) }
    }

    /// Appends a JSON string (quotes included).
    mutating func string(_ value: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var text = value
        text.withUTF8 { bytes in
            var plainFrom = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[plainFrom..<i]))
                switch b {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    raw("\\u00")
                    buffer.writeInteger(hex[Int(b >> 4)])
                    buffer.writeInteger(hex[Int(b & 0xF)])
                }
                plainFrom = i + 1
            }
            buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[plainFrom...]))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Appends `null` or the integer.
    mutating func int(_ value: Int64?) {
        if let value { int(value) } else { raw("null") }
    }

    /// Appends `null` or the double.
    mutating func double(_ value: Double?) {
        if let value { double(value) } else { raw("null") }
    }
}
