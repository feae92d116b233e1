/// A column of Int64s, bit-packed in blocks of 64 with a frame of reference.
///
/// Each block stores its minimum as a zigzag varint, one byte with the bit width `w`
/// (0–64) of the largest `value &- minimum`, then those offsets packed `w` bits each,
/// least significant bit first, in `ceil(count * w / 8)` bytes. A constant run costs two
/// bytes per 64 values; small jitter costs a few bits a value; one outlier widens only
/// its own block. All arithmetic wraps, so any Int64 sequence round-trips.
enum IntBlockColumn {
    /// Values per block (the last block of a column holds the remainder).
    static let blockSize = 64

    /// Appends `values` to `out`.
    static func write(_ values: UnsafeBufferPointer<Int64>, into out: inout ByteWriter) {
        var start = 0
        let n = values.count
        while start < n {
            let end = min(start &+ blockSize, n)
            writeBlock(UnsafeBufferPointer(rebasing: values[start..<end]), into: &out)
            start = end
        }
    }

    /// Appends one block (at most `blockSize` values): base, width, packed offsets.
    static func writeBlock(_ values: UnsafeBufferPointer<Int64>, into out: inout ByteWriter) {
        var lo = values[0]
        var hi = lo
        for v in values.dropFirst() {
            lo = v < lo ? v : lo
            hi = v > hi ? v : hi
        }
        let range = UInt64(bitPattern: hi &- lo)
        let width = 64 &- range.leadingZeroBitCount
        out.zigzag(lo)
        out.byte(UInt8(truncatingIfNeeded: width))
        guard width > 0 else { return }
        var acc: UInt64 = 0
        var bits = 0
        for v in values {
            let u = UInt64(bitPattern: v &- lo)
            acc |= u &<< UInt64(bits)
            bits &+= width
            if bits >= 64 {
                out.littleEndian(acc, count: 8)
                bits &-= 64
                // The bits of `u` that did not fit (none when it ended exactly).
                acc = bits == 0 ? 0 : u &>> UInt64(width &- bits)
            }
        }
        if bits > 0 { out.littleEndian(acc, count: (bits &+ 7) >> 3) }
    }

    /// The bytes `writeBlock` would append for `values`.
    static func blockEncodedSize(_ values: UnsafeBufferPointer<Int64>) -> Int {
        var lo = values[0]
        var hi = lo
        for v in values.dropFirst() {
            lo = v < lo ? v : lo
            hi = v > hi ? v : hi
        }
        let width = 64 &- UInt64(bitPattern: hi &- lo).leadingZeroBitCount
        return 1 &+ varintSize(Zigzag.encode(lo)) &+ (values.count &* width &+ 7) / 8
    }

    static func varintSize(_ value: UInt64) -> Int {
        var v = value
        var size = 1
        while v >= 0x80 { v >>= 7; size &+= 1 }
        return size
    }

    /// The bytes `write` would append for `values`.
    static func encodedSize(_ values: UnsafeBufferPointer<Int64>) -> Int {
        var size = 0
        var start = 0
        let n = values.count
        while start < n {
            let end = min(start &+ blockSize, n)
            size &+= blockEncodedSize(UnsafeBufferPointer(rebasing: values[start..<end]))
            start = end
        }
        return size
    }

    /// The fewest bytes `count` values can take (every block at width 0), used to refuse
    /// counts the remaining input cannot hold before anything is allocated.
    static func minimumBytes(count: Int) -> Int {
        (count &+ blockSize &- 1) / blockSize &* 2
    }

    /// Reads `count` values into `dst` (which must have room for them).
    static func read(
        _ count: Int, from r: inout ByteReader, into dst: UnsafeMutablePointer<Int64>,
        what: @autoclosure () -> String
    ) throws(BatchCodecError) {
        var start = 0
        while start < count {
            let c = min(blockSize, count &- start)
            try readBlock(c, from: &r, into: dst + start, what: what())
            start &+= c
        }
    }

    /// Reads one block of `c` (≤ `blockSize`) values into `out`.
    static func readBlock(
        _ c: Int, from r: inout ByteReader, into out: UnsafeMutablePointer<Int64>,
        what: @autoclosure () -> String
    ) throws(BatchCodecError) {
        let lo = try r.zigzag("\(what()) block base")
        let widthAt = r.position
        let width = Int(try r.byte("\(what()) block width"))
        guard width <= 64 else {
            throw r.malformed("\(what()) block width is \(width) (at most 64)", at: widthAt)
        }
        if width == 0 {
            for i in 0..<c { out[i] = lo }
        } else {
            let nbytes = (c &* width &+ 7) >> 3
            let at = try r.take(nbytes, "\(what()) block of \(c) values at \(width) bits")
            unpack(r.base.baseAddress! + at, nbytes: nbytes, count: c, width: width, base: lo, into: out)
        }
    }

    /// Unpacks `count` offsets of `width` bits from exactly `nbytes` bytes (checked by the caller).
    @inline(__always)
    private static func unpack(
        _ src: UnsafeRawPointer, nbytes: Int, count: Int, width: Int, base: Int64,
        into out: UnsafeMutablePointer<Int64>
    ) {
        let mask: UInt64 = width == 64 ? ~0 : (1 &<< UInt64(width)) &- 1
        var acc: UInt64 = 0
        var have = 0
        var pos = 0
        for i in 0..<count {
            var u: UInt64
            if have >= width {
                u = acc & mask
                acc = width == 64 ? 0 : acc &>> UInt64(width)
                have &-= width
            } else {
                var word: UInt64 = 0
                var got = 0
                if nbytes &- pos >= 8 {
                    word = UInt64(littleEndian: src.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
                    got = 64
                    pos &+= 8
                } else {
                    while pos < nbytes {
                        word |= UInt64(src.load(fromByteOffset: pos, as: UInt8.self)) &<< UInt64(got)
                        got &+= 8
                        pos &+= 1
                    }
                }
                u = (acc | (word &<< UInt64(have))) & mask
                let used = width &- have
                acc = used >= 64 ? 0 : word &>> UInt64(used)
                have = got &- used
            }
            out[i] = base &+ Int64(bitPattern: u)
        }
    }
}
