import CZlib

/// gzip (RFC 1952) through zlib, for `Content-Encoding: gzip`.
public enum Gzip {
    /// Compresses `input` into a gzip member.
    public static func compress(_ input: some ContiguousCollection<UInt8>, level: Int32 = 6) throws(CompressionError) -> [UInt8] {
        try input.withUnsafeBytesCompat { (src: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] in
            var stream = z_stream()
            // windowBits 15 + 16 selects the gzip wrapper.
            guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw CompressionError(.library, "gzip: deflateInit failed")
            }
            defer { deflateEnd(&stream) }
            let bound = Int(deflateBound(&stream, uLong(src.count))) + 32
            var out = [UInt8](repeating: 0, count: bound)
            let status: Int32 = out.withUnsafeMutableBytes { dst in
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(src.count)
                stream.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(dst.count)
                return deflate(&stream, Z_FINISH)
            }
            guard status == Z_STREAM_END else { throw CompressionError(.library, "gzip: deflate failed (\(status))") }
            out.removeSubrange(Int(stream.total_out)...)
            return out
        }
    }

    /// Decompresses gzip (or zlib) data; more than `maxSize` bytes of output is an error.
    public static func decompress(_ input: some ContiguousCollection<UInt8>, maxSize: Int) throws(CompressionError) -> [UInt8] {
        try input.withUnsafeBytesCompat { (src: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] in
            var stream = z_stream()
            // windowBits 15 + 32: detect gzip or zlib headers automatically.
            guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw CompressionError(.library, "gzip: inflateInit failed")
            }
            defer { inflateEnd(&stream) }
            stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(src.count)
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let (status, produced): (Int32, Int) = chunk.withUnsafeMutableBytes { dst in
                    stream.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(dst.count)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    return (s, dst.count - Int(stream.avail_out))
                }
                if out.count + produced > maxSize {
                    throw CompressionError(.tooLarge, "gzip stream decompresses to more than \(maxSize) bytes")
                }
                out.append(contentsOf: chunk[0..<produced])
                switch status {
                case Z_STREAM_END:
                    return out
                case Z_OK:
                    continue
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw CompressionError(.truncated, "gzip stream is truncated after \(src.count) bytes")
                default:
                    let why = stream.msg.map { String(cString: $0) } ?? "code \(status)"
                    throw CompressionError(.damaged, "gzip stream is damaged at input byte \(Int(stream.total_in)): \(why)")
                }
            }
        }
    }
}
