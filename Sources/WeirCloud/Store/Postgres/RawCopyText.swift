import NIOCore

/// Raw rows in `COPY ... FROM STDIN` text format: `device_id, series_id, ts, value,
/// applied`, tab-separated, one row per line.
///
/// Values are numbers only (no text needing escapes); a `Double`'s `description` is the
/// shortest text that reads back to the same bits, which PostgreSQL's `float8` input
/// does (readings are finite: the decoder refuses the rest).
enum RawCopyText {
    /// The longest row: three 20-character integers, a value, four tabs, a flag, a newline.
    private static let maximumRow = 3 * 20 + 32 + 6

    static func encode(_ rows: [RawRow]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: rows.count * 56)
        for row in rows {
            let value = row.value.description
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: maximumRow + value.utf8.count) { out in
                var at = 0
                at = writeDecimal(row.deviceID, to: out, at: at)
                out[at] = UInt8(ascii: "\t")
                at = writeDecimal(row.seriesID, to: out, at: at + 1)
                out[at] = UInt8(ascii: "\t")
                at = writeDecimal(row.ts, to: out, at: at + 1)
                out[at] = UInt8(ascii: "\t")
                at += 1
                for byte in value.utf8 {
                    out[at] = byte
                    at += 1
                }
                out[at] = UInt8(ascii: "\t")
                out[at + 1] = row.applied ? UInt8(ascii: "t") : UInt8(ascii: "f")
                out[at + 2] = UInt8(ascii: "\n")
                return at + 3
            }
        }
        return buffer
    }

    /// Writes `value` in decimal at `at` (room for 20 bytes is there); returns the end.
    static func writeDecimal(_ value: Int64, to out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var at = start
        if value < 0 {
            out[at] = UInt8(ascii: "-")
            at += 1
        }
        var magnitude = value.magnitude
        var digits = 1
        var scale: UInt64 = 10
        while digits < 20, magnitude >= scale {
            digits += 1
            if scale > UInt64.max / 10 { break }
            scale *= 10
        }
        var index = at + digits - 1
        repeat {
            out[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            index -= 1
        } while magnitude > 0
        return at + digits
    }
}
