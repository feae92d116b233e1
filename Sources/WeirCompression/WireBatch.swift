import WeirCore

/// The wire form of a batch (`Content-Type: application/vnd.weir.batch`): the binary
/// batch codec inside one zstd frame. The edge stores chunks in this form and the cloud
/// accepts it.
///
/// ```swift
/// let body = try WireBatch.encode(batch)
/// let batch = try WireBatch.decode(body, maxSize: 16 << 20)
/// ```
public enum WireBatch {
    /// The zstd level used on the wire: fast, and the codec has already done the heavy lifting.
    public static let zstdLevel: Int32 = 3

    /// The four bytes a zstd frame starts with.
    static let zstdMagic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

    /// Encodes `batch` with `BatchCodec` and compresses it with zstd. A batch handed
    /// over (`encode(consume batch)`, or a temporary) is released before zstd runs, so
    /// its readings and zstd's tables never take memory at the same time.
    public static func encode(_ batch: consuming Batch) throws -> [UInt8] {
        let raw = BatchCodec.encode(batch)
        _ = consume batch
        return try Zstd.compress(raw, level: zstdLevel)
    }

    /// Decompresses and decodes a wire batch. `maxSize` bounds the decompressed codec
    /// bytes (and so, through `BatchCodec.maxReadingsPerByte`, the readings).
    /// An uncompressed codec body (starting with `WEIR`) is accepted as well, so a chunk
    /// sent without zstd still decodes.
    ///
    /// Throws `CompressionError` when the zstd frame is damaged or too large, and
    /// `BatchCodecError` (with the byte offset in the decompressed codec) otherwise.
    public static func decode(_ bytes: [UInt8], maxSize: Int) throws -> Batch {
        try BatchCodec.decode(unwrap(bytes, maxSize: maxSize))
    }

    /// The codec bytes inside a wire batch (decompressed; an uncompressed codec body as
    /// it is), for `BatchMerger` or `BatchCodec.decode`. Throws `CompressionError`.
    public static func unwrap(_ bytes: [UInt8], maxSize: Int) throws -> [UInt8] {
        if BatchCodec.looksLikeBatch(bytes) {
            guard bytes.count <= maxSize else {
                throw CompressionError(.tooLarge, "batch is \(bytes.count) bytes, more than the \(maxSize) allowed")
            }
            return bytes
        }
        guard bytes.starts(with: zstdMagic) else {
            throw CompressionError(.wrongFormat, "not a Weir wire batch: expected a zstd frame (28 b5 2f fd) or the codec magic \"WEIR\", got \(prefixHex(bytes))")
        }
        return try Zstd.decompress(bytes, maxSize: maxSize)
    }

    /// Codec bytes (`BatchCodec.encode`, `BatchMerger.encode`) in their wire form.
    public static func wrap(_ codecBytes: [UInt8]) throws -> [UInt8] {
        try Zstd.compress(codecBytes, level: zstdLevel)
    }

    private static func prefixHex(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "an empty body" }
        let digits = "0123456789abcdef".map { $0 }
        return bytes.prefix(8).map { b in String([digits[Int(b >> 4)], digits[Int(b & 0xF)]]) }.joined(separator: " ")
    }
}
