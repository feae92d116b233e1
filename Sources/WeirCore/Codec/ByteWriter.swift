/// An append-only byte buffer with the primitives of the batch format: LEB128 varints,
/// zigzag integers and length-prefixed strings.
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    @inline(__always)
    mutating func byte(_ b: UInt8) {
        bytes.append(b)
    }

    /// Unsigned LEB128: 7 bits a byte, low groups first, high bit set on all but the last.
    @inline(__always)
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    @inline(__always)
    mutating func varint(_ value: Int) {
        varint(UInt64(value))
    }

    /// A signed integer as a zigzag varint (0, -1, 1, -2, ... → 0, 1, 2, 3, ...).
    @inline(__always)
    mutating func zigzag(_ value: Int64) {
        varint(Zigzag.encode(value))
    }

    /// A length-prefixed UTF-8 string.
    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            varint(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    /// The low `count` bytes of `value`, least significant first.
    @inline(__always)
    mutating func littleEndian(_ value: UInt64, count: Int) {
        var v = value
        for _ in 0..<count {
            bytes.append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }

    mutating func append(contentsOf other: [UInt8]) {
        bytes.append(contentsOf: other)
    }

    mutating func truncate(to count: Int) {
        bytes.removeSubrange(count...)
    }
}

/// Zigzag mapping of signed to unsigned integers, so small magnitudes get short varints.
enum Zigzag {
    @inline(__always)
    static func encode(_ n: Int64) -> UInt64 {
        UInt64(bitPattern: (n &<< 1) ^ (n >> 63))
    }

    @inline(__always)
    static func decode(_ u: UInt64) -> Int64 {
        Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }
}
