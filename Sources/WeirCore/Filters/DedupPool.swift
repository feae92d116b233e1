/// The dedup windows' times: a growable array of `Int64` addressed by index, kept in
/// fixed-size chunks that never move.
///
/// Why not one `FlatBuffer`: the pool grows all the time while series' windows grow (a
/// window that outgrows its ring moves to a new, larger segment at the pool's end), and a
/// flat buffer doubles by copying everything into fresh memory. With thousands of series
/// that was megabytes of copying and of first-touch page faults per few hundred readings
/// a series; a chunked pool only ever adds a chunk. The price is one load from the
/// (small, always cached) chunk table per access.
///
/// The same rules as `FlatBuffer`, which `FilterEngine` (its only owner) keeps: a copy of
/// the value shares the chunks, exactly one owner calls `deallocate()`, `copy()` makes an
/// independent pool, and indices are checked by `assert` only (debug builds).
///
/// ```swift
/// var pool = DedupPool()
/// pool.append(repeating: 0, count: 8) // indices 0..<8
/// pool[3] = 42
/// pool.deallocate()
/// ```
struct DedupPool {
    /// Entries per chunk (32 KiB of times).
    static let chunkShift = 12
    static let chunkSize = 1 << chunkShift
    static let chunkMask = chunkSize - 1

    private var chunks = FlatBuffer<UnsafeMutablePointer<Int64>>(capacity: 8)
    private(set) var count = 0

    /// An empty pool (no chunk allocated until the first append).
    init() {}

    /// The time at index `i` (`0 ..< count`). Setting it writes through the chunk's
    /// pointer, so it works on a `let` pool too.
    subscript(i: Int) -> Int64 {
        @inline(__always) get {
            assert(i >= 0 && i < count, "DedupPool index \(i) out of 0..<\(count)")
            return chunks[i &>> DedupPool.chunkShift][i & DedupPool.chunkMask]
        }
        @inline(__always) nonmutating set {
            assert(i >= 0 && i < count, "DedupPool index \(i) out of 0..<\(count)")
            chunks[i &>> DedupPool.chunkShift][i & DedupPool.chunkMask] = newValue
        }
    }

    /// Appends `n` copies of `value` (indices `count ..< count + n`), adding chunks as needed.
    mutating func append(repeating value: Int64, count n: Int) {
        precondition(n >= 0)
        let end = count + n
        while chunks.count * DedupPool.chunkSize < end {
            chunks.append(.allocate(capacity: DedupPool.chunkSize))
        }
        var i = count
        while i < end {
            // Fill chunk by chunk.
            let offset = i & DedupPool.chunkMask
            let run = Swift.min(end - i, DedupPool.chunkSize - offset)
            (chunks[i &>> DedupPool.chunkShift] + offset).initialize(repeating: value, count: run)
            i += run
        }
        count = end
    }

    /// An independent pool with the same times.
    func copy() -> DedupPool {
        var out = DedupPool()
        for c in chunks.indices {
            let chunk = UnsafeMutablePointer<Int64>.allocate(capacity: DedupPool.chunkSize)
            // Only the used part of the last chunk is initialised.
            let used = Swift.min(DedupPool.chunkSize, count - c * DedupPool.chunkSize)
            if used > 0 { chunk.initialize(from: chunks[c], count: used) }
            out.chunks.append(chunk)
        }
        out.count = count
        return out
    }

    /// Frees every chunk; the pool (and every copy of it) must not be used afterwards.
    func deallocate() {
        for c in chunks.indices { chunks[c].deallocate() }
        chunks.deallocate()
    }
}
