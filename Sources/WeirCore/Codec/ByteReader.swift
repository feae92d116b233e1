/// A bounds-checked cursor over borrowed bytes. Every read checks what remains and
/// throws a `BatchCodecError` naming the field and the byte offset; nothing here traps.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    /// Where reading must stop (exclusive); the checksum trailer lies beyond it.
    let end: Int
    var position: Int

    init(_ base: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        self.base = base
        self.position = start
        self.end = end
    }

    var remaining: Int { end &- position }

    @inline(__always)
    func truncated(_ what: String, needs: Int) -> BatchCodecError {
        BatchCodecError(.truncated, at: position,
                        "\(what) needs \(needs) byte(s) but only \(remaining) remain")
    }

    @inline(__always)
    func malformed(_ message: String, at offset: Int? = nil) -> BatchCodecError {
        BatchCodecError(.malformed, at: offset ?? position, message)
    }

    @inline(__always)
    mutating func byte(_ what: @autoclosure () -> String) throws(BatchCodecError) -> UInt8 {
        guard position < end else { throw truncated(what(), needs: 1) }
        let b = base[position]
        position &+= 1
        return b
    }

    /// Unsigned LEB128, at most 10 bytes and at most 64 bits of value.
    @inline(__always)
    mutating func varint(_ what: @autoclosure () -> String) throws(BatchCodecError) -> UInt64 {
        // Fast path: one byte.
        if position < end {
            let b = base[position]
            if b < 0x80 {
                position &+= 1
                return UInt64(b)
            }
        }
        return try varintSlow(what())
    }

    mutating func varintSlow(_ what: String) throws(BatchCodecError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else {
                let needs = position - start + 1
                position = start
                throw truncated("varint (\(what))", needs: needs)
            }
            let b = base[position]
            position &+= 1
            if shift == 63 && b > 1 {
                throw malformed("varint (\(what)) overflows 64 bits", at: start)
            }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw malformed("varint (\(what)) is longer than 10 bytes", at: start) }
        }
    }

    @inline(__always)
    mutating func zigzag(_ what: @autoclosure () -> String) throws(BatchCodecError) -> Int64 {
        Zigzag.decode(try varint(what()))
    }

    /// A count or length that must fit in `limit` (typically what the remaining bytes
    /// can justify), so no allocation is ever sized by an unchecked number.
    mutating func count(_ what: @autoclosure () -> String, atMost limit: Int) throws(BatchCodecError) -> Int {
        let start = position
        let v = try varint(what())
        guard v <= UInt64(max(limit, 0)) else {
            throw BatchCodecError(.malformed, at: start, "\(what()) is \(v), more than the \(max(limit, 0)) the remaining bytes allow")
        }
        return Int(v)
    }

    /// Skips `n` bytes after checking they are there; returns where they start.
    @inline(__always)
    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws(BatchCodecError) -> Int {
        guard n >= 0, n <= remaining else { throw truncated(what(), needs: n) }
        let start = position
        position &+= n
        return start
    }

    /// A length-prefixed UTF-8 string.
    mutating func string(_ what: @autoclosure () -> String) throws(BatchCodecError) -> String {
        let lengthAt = position
        let length = try varint("length of \(what())")
        guard length <= UInt64(remaining) else {
            position = lengthAt
            throw BatchCodecError(.truncated, at: lengthAt, "\(what()) claims \(length) bytes but only \(remaining) remain")
        }
        let start = try take(Int(length), what())
        let slice = UnsafeRawBufferPointer(rebasing: base[start..<(start + Int(length))])
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw BatchCodecError(.malformed, at: start, "\(what()) is not valid UTF-8")
        }
        return s
    }
}
