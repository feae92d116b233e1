/// The binary batch codec (`application/vnd.weir.batch` before zstd): a compact,
/// checksummed, columnar encoding of a `Batch`. See `FORMAT.md` beside this file for the
/// byte layout.
///
/// Readings come back grouped by series `(device, metric)`, series in ascending order,
/// readings of one series in the order they were given; every `ts` and every value's bit
/// pattern is preserved (−0.0, subnormals, duplicates and all). The gateway, the batch id
/// and the drop-ledger rows (in order) are preserved too.
///
/// Decoding is total: any byte string gives a batch or a `BatchCodecError` naming the
/// problem and its byte offset — never a trap, a hang, or an allocation the input does
/// not justify (at most `maxReadingsPerByte` readings per input byte).
///
/// ```swift
/// let bytes = BatchCodec.encode(batch)
/// let back = try BatchCodec.decode(bytes)
/// ```
public enum BatchCodec {
    /// The four bytes every encoded batch starts with: `WEIR`.
    public static let magic: [UInt8] = [0x57, 0x45, 0x49, 0x52]
    /// The format version this code writes and reads.
    public static let version: UInt8 = 1
    /// Magic, version, flags.
    static let headerSize = 6
    /// The CRC-32C trailer.
    static let trailerSize = 4
    /// The most readings a decoder accepts per byte of input; a valid encoding never
    /// needs more (a width-0 block costs 2 bytes per 64 values in each of two columns).
    public static let maxReadingsPerByte = 16

    /// Encodes `batch`. Never fails: any strings and any Double bit patterns encode.
    public static func encode(_ batch: Batch) -> [UInt8] {
        var encoder = BatchEncoder()
        return encoder.encode(batch)
    }

    /// Decodes an encoded batch, verifying magic, version and checksum first.
    public static func decode(_ bytes: [UInt8]) throws(BatchCodecError) -> Batch {
        let result: Result<Batch, BatchCodecError> = bytes.withUnsafeBytes { raw in
            do throws(BatchCodecError) {
                return .success(try BatchDecoder.decode(raw))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Decodes an encoded batch from borrowed bytes.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(BatchCodecError) -> Batch {
        try BatchDecoder.decode(bytes)
    }

    /// Whether `bytes` start like an encoded batch (the magic), without decoding it.
    public static func looksLikeBatch(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.starts(with: magic)
    }
}
