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
            var lo = values[start]
            var hi = lo
            for i in (start &+ 1)..<end {
                let v = values[i]
                lo = v < lo ? v : lo
                hi = v > hi ? v : hi
            }
            let range = UInt64(bitPattern: hi &- lo)
            let width = 64 &- range.leadingZeroBitCount
            out.zigzag(lo)
            out.byte(UInt8(truncatingIfNeeded: width))
            if width > 0 {
                var acc: UInt64 = 0
                var bits = 0
                for i in start..<end {
                    let u = UInt64(bitPattern: values[i] &- lo)
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
            start = end
        }
    }

    /// The bytes `write` would append for `values`.
    static func encodedSize(_ values: UnsafeBufferPointer<Int64>) -> Int {
        var size = 0
        var start = 0
        let n = values.count
        while start < n {
            let end = min(start &+ blockSize, n)
            var lo = values[start]
            var hi = lo
            for i in (start &+ 1)..<end {
                let v = values[i]
                lo = v < lo ? v : lo
                hi = v > hi ? v : hi
            }
            let width = 64 &- UInt64(bitPattern: hi &- lo).leadingZeroBitCount
            var z = Zigzag.encode(lo)
            size &+= 2 &+ ((end &- start) &* width &+ 7) / 8
            while z >= 0x80 { size &+= 1; z >>= 7 }
            start = end
        }
        return size
    }

    /// The fewest bytes `count` values can take (every block at width 0), used to refuse
    /// counts the remaining input cannot hold before anything is allocated.
    static func minimumBytes(count: Int) -> Int {
        (count &+ blockSize &- 1) / blockSize &* 2
    }

    /// Reads `count` values into `into` (which must have room for them).
    static func read(
        _ count: Int, from r: inout ByteReader, into dst: UnsafeMutablePointer<Int64>, what: String
    ) throws(BatchCodecError) {
        var start = 0
        while start < count {
            let c = min(blockSize, count &- start)
            let lo = try r.zigzag("\(what) block base")
            let widthAt = r.position
            let width = Int(try r.byte("\(what) block width"))
            guard width <= 64 else {
                throw r.malformed("\(what) block width is \(width) (at most 64)", at: widthAt)
            }
            let out = dst + start
            if width == 0 {
                for i in 0..<c { out[i] = lo }
            } else {
                let nbytes = (c &* width &+ 7) >> 3
                let at = try r.take(nbytes, "\(what) block of \(c) values at \(width) bits")
                unpack(r.base.baseAddress! + at, nbytes: nbytes, count: c, width: width, base: lo, into: out)
            }
            start &+= c
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
