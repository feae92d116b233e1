extension FilterEngine {
    /// Whether `ts` was seen by the dedup window at byte `w` of the arena within
    /// `window` of its newest time; records it when not. The common case — a new latest
    /// time — writes one slot and reads none. Times that fell out of the window go only
    /// when the window is full (`makeRoom`), so stale ones linger until then; they are
    /// older than the window, so no time that is judged can match them.
    @inline(__always)
    func dedupSeen(_ at: Int, ts: Int64, window: Int64) -> Bool {
        // The common case inline: a new latest time with room for it.
        let w = load(at, as: DedupWindow.self)
        if ts > w.newest && w.count < w.capacity {
            dedupPool[w.slot(w.count)] = ts
            // Only the count and the newest time change.
            store(UInt32(truncatingIfNeeded: w.count &+ 1), at: at &+ DedupWindow.countOffset)
            store(ts, at: at &+ DedupWindow.newestOffset)
            return false
        }
        return dedupSeenSlowly(at, ts: ts, window: window)
    }

    func dedupSeenSlowly(_ at: Int, ts: Int64, window: Int64) -> Bool {
        var w = load(at, as: DedupWindow.self)
        if ts > w.newest {
            w.newest = ts
            if w.count == w.capacity {
                store(w, at: at)
                makeRoom(dedup: at, window: window)
                w = load(at, as: DedupWindow.self)
            }
            dedupPool[w.slot(w.count)] = ts
            w.count += 1
        } else {
            // Older than the window: it cannot be judged, let it through unrecorded.
            if ts < w.newest &- window { return false }
            var lo = 0, hi = w.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if dedupPool[w.slot(mid)] < ts { lo = mid + 1 } else { hi = mid }
            }
            if lo < w.count && dedupPool[w.slot(lo)] == ts { return true }
            if w.count == w.capacity {
                lo -= makeRoom(dedup: at, window: window)
                if lo < 0 { return false } // older than everything kept at the cap
                w = load(at, as: DedupWindow.self)
            }
            var j = w.count
            while j > lo {
                dedupPool[w.slot(j)] = dedupPool[w.slot(j - 1)]
                j -= 1
            }
            dedupPool[w.slot(lo)] = ts
            w.count += 1
        }
        store(w, at: at)
        return false
    }

    /// Frees at least one slot in the full window at `at`: drops the times older than
    /// the window; when that leaves it more than 3/4 full, grows it (to a new segment at
    /// the pool's end) up to `maxDedupEntriesPerSeries`, and past that forgets the oldest
    /// time if it is still full. Returns how many times it dropped from the front.
    ///
    /// Dropping stale times only here, in one sweep, rather than every few records keeps
    /// the cold front of the ring out of the per-reading path.
    @discardableResult
    func makeRoom(dedup at: Int, window: Int64) -> Int {
        var w = load(at, as: DedupWindow.self)
        let cutoff = w.newest &- window
        // The times are sorted: the stale ones are a prefix, found by bisection.
        var lo = 0, hi = w.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if dedupPool[w.slot(mid)] < cutoff { lo = mid + 1 } else { hi = mid }
        }
        var dropped = lo
        w.start = (w.start + lo) & (w.capacity - 1)
        w.count -= lo
        if w.count * 4 <= w.capacity * 3 {
            store(w, at: at)
            return dropped
        }
        if w.capacity >= maxDedupEntriesPerSeries {
            if w.count == w.capacity {
                w.start = (w.start + 1) & (w.capacity - 1)
                w.count -= 1
                dropped += 1
            }
            store(w, at: at)
            return dropped
        }
        let newCapacity = w.capacity * 2
        let newBase = dedupPool.count
        growPool(by: newCapacity)
        for j in 0..<w.count { dedupPool[newBase + j] = dedupPool[w.slot(j)] }
        w.base = newBase
        w.capacity = newCapacity
        w.start = 0
        store(w, at: at)
        return dropped
    }

    /// Appends `n` zero times to the pool. It grows four-fold when full: windows keep
    /// growing into new segments, and each time the pool itself grows it is copied.
    func growPool(by n: Int) {
        if dedupPool.count + n > dedupPool.capacity {
            dedupPool.reserveCapacity(Swift.max(dedupPool.capacity * 4, dedupPool.count + n))
        }
        dedupPool.append(repeating: 0, count: n)
    }
}

extension FilterEngine {
    /// One series' dedup window: a sorted ring of times in `FilterEngine.dedupPool`, oldest
    /// at `start`, `capacity` a power of two.
    struct DedupWindow: Sendable {
        static let initialCapacity = 8
        /// Where `count` and `newest` are in the struct (checked when an engine is made).
        static var countOffset: Int { 12 }
        static var newestOffset: Int { 16 }
        static var layoutHolds: Bool {
            MemoryLayout<DedupWindow>.offset(of: \DedupWindow.count32) == countOffset
                && MemoryLayout<DedupWindow>.offset(of: \DedupWindow.newest) == newestOffset
        }
        // 24 bytes, so a device's windows take few cache lines; a pool past 2^32 times
        // (32 GiB) is beyond any memory this runs in.
        var base32: UInt32
        var capacity32: UInt32
        var start32: UInt32 = 0
        var count32: UInt32 = 0
        var newest = Int64.min

        init(base: Int, capacity: Int) {
            base32 = UInt32(base)
            capacity32 = UInt32(capacity)
        }

        var base: Int {
            get { Int(base32) }
            set { base32 = UInt32(newValue) }
        }
        var capacity: Int {
            get { Int(capacity32) }
            set { capacity32 = UInt32(newValue) }
        }
        var start: Int {
            get { Int(start32) }
            set { start32 = UInt32(newValue) }
        }
        var count: Int {
            get { Int(count32) }
            set { count32 = UInt32(newValue) }
        }

        /// Where the `i`-th oldest time is in the pool.
        @inline(__always) func slot(_ i: Int) -> Int { base + ((start + i) & (capacity - 1)) }
    }
}
