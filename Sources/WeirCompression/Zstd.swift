import CZstd

/// zstd compression of whole buffers (libzstd's simple API).
///
/// ```swift
/// let packed = try Zstd.compress(bytes, level: 3)
/// let back = try Zstd.decompress(packed, maxSize: 16 << 20)
/// ```
public enum Zstd {
    /// Compresses `input` into one zstd frame.
    public static func compress(_ input: some ContiguousCollection<UInt8>, level: Int32 = 3) throws(CompressionError) -> [UInt8] {
        try input.withUnsafeBytesCompat { (src: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] in
            let bound = ZSTD_compressBound(src.count)
            var out = [UInt8](repeating: 0, count: bound)
            let written = out.withUnsafeMutableBytes { dst in
                ZSTD_compress(dst.baseAddress, dst.count, src.baseAddress, src.count, level)
            }
            if ZSTD_isError(written) != 0 {
                throw CompressionError("zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
            }
            out.removeSubrange(written...)
            return out
        }
    }

    /// Decompresses one or more concatenated zstd frames. Output beyond `maxSize` bytes is
    /// an error (a small input must not make us allocate without bound).
    public static func decompress(_ input: some ContiguousCollection<UInt8>, maxSize: Int) throws(CompressionError) -> [UInt8] {
        try input.withUnsafeBytesCompat { (src: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] in
            guard let dctx = ZSTD_createDCtx() else { throw CompressionError("zstd: out of memory") }
            defer { ZSTD_freeDCtx(dctx) }
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            var inBuf = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
            var lastResult = 0
            while true {
                let (result, produced) = chunk.withUnsafeMutableBytes { dst -> (Int, Int) in
                    var outBuf = ZSTD_outBuffer(dst: dst.baseAddress, size: dst.count, pos: 0)
                    let r = ZSTD_decompressStream(dctx, &outBuf, &inBuf)
                    return (r, outBuf.pos)
                }
                if ZSTD_isError(result) != 0 {
                    throw CompressionError("zstd stream is damaged at input byte \(inBuf.pos): \(String(cString: ZSTD_getErrorName(result)))")
                }
                lastResult = result
                if out.count + produced > maxSize {
                    throw CompressionError("zstd stream decompresses to more than \(maxSize) bytes")
                }
                out.append(contentsOf: chunk[0..<produced])
                if inBuf.pos == inBuf.size && produced < chunk.count { break }
            }
            if lastResult != 0 {
                throw CompressionError("zstd stream is truncated (frame incomplete after \(src.count) bytes)")
            }
            return out
        }
    }
}

/// Compression or decompression failed; the message says why.
public struct CompressionError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Contiguous byte collections whose storage can be borrowed (`[UInt8]`, `ArraySlice`, `ContiguousArray`).
public protocol ContiguousCollection<Element>: Collection {
    func withUnsafeBytesCompat<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R
}

extension Array: ContiguousCollection {
    public func withUnsafeBytesCompat<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

extension ArraySlice: ContiguousCollection {
    public func withUnsafeBytesCompat<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

extension ContiguousArray: ContiguousCollection {
    public func withUnsafeBytesCompat<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
