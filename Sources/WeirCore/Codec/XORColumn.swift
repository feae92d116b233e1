/// Values as Gorilla XOR bitstreams (Pelkonen et al., VLDB 2015), bit-exact for every
/// Double bit pattern (−0.0, subnormals, NaN payloads included).
///
/// Bits are written most significant first. The first value is its 64 raw bits. Each
/// later value is XORed with the previous one:
/// - `0`: identical bits;
/// - `10` + the meaningful bits inside the previous window (leading/trailing zero counts
///   reused; only valid once a window exists);
/// - `11` + 5 bits leading zeros (capped at 31) + 6 bits (meaningful length − 1) + the
///   meaningful bits; this sets the window.
///
/// The stream is padded with zero bits to a whole byte.
enum XORColumn {
    /// Encodes `values` into `out` (cleared first). Gives up and returns `false` as soon
    /// as the stream grows past `budget` bytes, so a cheaper encoding is not paid for twice.
    static func write(_ values: UnsafeBufferPointer<Double>, into out: inout ByteWriter, budget: Int) -> Bool {
        out.truncate(to: 0)
        guard !values.isEmpty else { return true }
        var w = BitWriter()
        var prev = values[0].bitPattern
        w.write(prev >> 32, 32, into: &out)
        w.write(prev & 0xFFFF_FFFF, 32, into: &out)
        var windowLead = -1
        var windowTrail = 0
        for i in 1..<values.count {
            let bits = values[i].bitPattern
            let x = bits ^ prev
            prev = bits
            if x == 0 {
                w.write(0, 1, into: &out)
            } else {
                let lead = min(x.leadingZeroBitCount, 31)
                let trail = x.trailingZeroBitCount
                if windowLead >= 0 && lead >= windowLead && trail >= windowTrail {
                    let m = 64 &- windowLead &- windowTrail
                    w.write(0b10, 2, into: &out)
                    w.write(x &>> UInt64(windowTrail), m, into: &out)
                } else {
                    let m = 64 &- lead &- trail
                    w.write(0b11, 2, into: &out)
                    w.write(UInt64(lead), 5, into: &out)
                    w.write(UInt64(m &- 1), 6, into: &out)
                    w.write(x &>> UInt64(trail), m, into: &out)
                    windowLead = lead
                    windowTrail = trail
                }
            }
            if out.count > budget { return false }
        }
        w.flush(into: &out)
        return out.count <= budget
    }

    /// Decodes `count` value bit patterns from exactly the `length` bytes at the reader's position.
    static func read(
        _ count: Int, length: Int, from r: inout ByteReader, into out: UnsafeMutablePointer<Int64>
    ) throws(BatchCodecError) {
        let start = try r.take(length, "XOR value stream")
        var b = BitReader(r.base.baseAddress! + start, count: length, offset: start)
        guard count > 0 else { return }
        var prev = try b.read(32) &<< 32
        prev |= try b.read(32)
        out[0] = Int64(bitPattern: prev)
        var windowLead = -1
        var windowTrail = 0
        for i in 1..<count {
            if try b.read(1) == 0 {
                out[i] = Int64(bitPattern: prev)
                continue
            }
            let m: Int
            if try b.read(1) == 0 {
                guard windowLead >= 0 else {
                    throw BatchCodecError(.malformed, at: b.byteOffset, "XOR value \(i) reuses a window before any was set")
                }
                m = 64 &- windowLead &- windowTrail
            } else {
                let lead = Int(try b.read(5))
                m = Int(try b.read(6)) &+ 1
                guard lead &+ m <= 64 else {
                    throw BatchCodecError(.malformed, at: b.byteOffset, "XOR value \(i) has \(lead) leading zeros and \(m) meaningful bits (more than 64)")
                }
                windowLead = lead
                windowTrail = 64 &- lead &- m
            }
            let meaningful = m > 32 ? (try b.read(m &- 32) &<< 32) | (try b.read(32)) : try b.read(m)
            prev ^= meaningful &<< UInt64(windowTrail)
            out[i] = Int64(bitPattern: prev)
        }
        guard b.paddingOnly else {
            throw BatchCodecError(.malformed, at: b.byteOffset, "XOR value stream has \(b.bitsLeft) bits left after \(count) values")
        }
    }
}

/// Writes bit fields most significant bit first.
struct BitWriter {
    private var acc: UInt64 = 0
    private var bits = 0

    /// Appends the low `n` bits of `value` (n ≤ 64).
    @inline(__always)
    mutating func write(_ value: UInt64, _ n: Int, into out: inout ByteWriter) {
        if n > 32 {
            write(value &>> 32, n &- 32, into: &out)
            write(value & 0xFFFF_FFFF, 32, into: &out)
            return
        }
        // `bits` < 8 here, so `bits + n` ≤ 40 fits in the accumulator.
        let v = n == 0 ? 0 : value & ((1 &<< UInt64(n)) &- 1)
        acc = (acc &<< UInt64(n)) | v
        bits &+= n
        while bits >= 8 {
            bits &-= 8
            out.byte(UInt8(truncatingIfNeeded: acc &>> UInt64(bits)))
        }
    }

    /// Pads the last byte with zeros.
    mutating func flush(into out: inout ByteWriter) {
        if bits > 0 {
            out.byte(UInt8(truncatingIfNeeded: acc &<< UInt64(8 &- bits)))
            bits = 0
        }
    }
}

/// Reads bit fields most significant bit first from a bounded byte range.
struct BitReader {
    private let src: UnsafeRawPointer
    private let count: Int
    private let offset: Int
    private var pos = 0
    private var acc: UInt64 = 0
    private var bits = 0

    init(_ src: UnsafeRawPointer, count: Int, offset: Int) {
        self.src = src
        self.count = count
        self.offset = offset
    }

    /// The byte (in the whole input) the reader has reached, for error messages.
    var byteOffset: Int { offset &+ pos &- bits / 8 }

    var bitsLeft: Int { (count &- pos) &* 8 &+ bits }

    /// Whether only zero padding (less than one byte) is left.
    var paddingOnly: Bool {
        pos == count && bits < 8 && (bits == 0 || acc & ((1 &<< UInt64(bits)) &- 1) == 0)
    }

    /// The next `n` bits (n ≤ 32).
    @inline(__always)
    mutating func read(_ n: Int) throws(BatchCodecError) -> UInt64 {
        if bits < n {
            while bits <= 56 && pos < count {
                acc = (acc &<< 8) | UInt64(src.load(fromByteOffset: pos, as: UInt8.self))
                pos &+= 1
                bits &+= 8
            }
            guard bits >= n else {
                throw BatchCodecError(.truncated, at: offset &+ count, "XOR value stream ends in the middle of a value")
            }
        }
        bits &-= n
        return (acc &>> UInt64(bits)) & ((1 &<< UInt64(n)) &- 1)
    }
}
