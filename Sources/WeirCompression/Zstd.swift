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
            var written = 0
            // Uninitialized: only the pages zstd writes become resident.
            let out = [UInt8](unsafeUninitializedCapacity: bound) { dst, count in
                written = ZSTD_compress(dst.baseAddress, dst.count, src.baseAddress, src.count, level)
                count = ZSTD_isError(written) != 0 ? 0 : written
            }
            if ZSTD_isError(written) != 0 {
                throw CompressionError(.library, "zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
            }
            return out
        }
    }

    /// Decompresses one or more concatenated zstd frames. Output beyond `maxSize` bytes is
    /// an error (a small input must not make us allocate without bound).
    public static func decompress(_ input: some ContiguousCollection<UInt8>, maxSize: Int) throws(CompressionError) -> [UInt8] {
        try input.withUnsafeBytesCompat { (src: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] in
            guard let dctx = ZSTD_createDCtx() else { throw CompressionError(.library, "zstd: out of memory") }
            defer { ZSTD_freeDCtx(dctx) }
            if let whole = decompressWholeFrame(src, dctx, maxSize: maxSize) { return whole }
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
                    throw CompressionError(.damaged, "zstd stream is damaged at input byte \(inBuf.pos): \(String(cString: ZSTD_getErrorName(result)))")
                }
                lastResult = result
                if out.count + produced > maxSize {
                    throw CompressionError(.tooLarge, "zstd stream decompresses to more than \(maxSize) bytes")
                }
                out.append(contentsOf: chunk[0..<produced])
                if inBuf.pos == inBuf.size && produced < chunk.count { break }
            }
            if lastResult != 0 {
                throw CompressionError(.truncated, "zstd stream is truncated (frame incomplete after \(src.count) bytes)")
            }
            return out
        }
    }
}

extension Zstd {
    /// The common case in one call: `src` is exactly one frame that states its content
    /// size (`compress` writes it), within `maxSize`. The output is allocated once at its
    /// final size and zstd needs no window buffer. `nil` otherwise, or when the frame does
    /// not decompress to what it states: the streaming path then runs and names the problem.
    static func decompressWholeFrame(_ src: UnsafeRawBufferPointer, _ dctx: OpaquePointer, maxSize: Int) -> [UInt8]? {
        guard let base = src.baseAddress else { return nil }
        let frame = ZSTD_findFrameCompressedSize(base, src.count)
        guard ZSTD_isError(frame) == 0, frame == src.count else { return nil }
        let content = ZSTD_getFrameContentSize(base, src.count)
        // UInt64.max: size unknown; UInt64.max - 1: header error.
        guard content < UInt64.max - 1, content <= UInt64(maxSize) else { return nil }
        let size = Int(content)
        var ok = false
        let out = [UInt8](unsafeUninitializedCapacity: size) { dst, count in
            let r = ZSTD_decompressDCtx(dctx, dst.baseAddress, size, base, src.count)
            ok = ZSTD_isError(r) == 0 && r == size
            count = ok ? size : 0
        }
        return ok ? out : nil
    }
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
