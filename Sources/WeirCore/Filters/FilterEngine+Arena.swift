extension FilterEngine {
    /// The arena's memory. Valid until the arena grows: on the per-reading path, only
    /// adding a series does that, and `judge` takes it again afterwards.
    var bytes: UnsafeMutableRawPointer {
        // Safe to hand out: the arena's memory lives until `deinit` or a rebuild replaces
        // it, and every access through it is an offset checked by `checkArena`.
        @inline(__always) get { UnsafeMutableRawPointer(arena.base) }
    }

    /// Checks that `n` bytes at `offset` lie in the arena (see `checkBounds`: debug and
    /// fuzz builds only).
    @inline(__always)
    func checkArena(_ offset: Int, bytes n: Int) {
        checkBounds(offset >= 0 && offset + n <= arena.count * 8, "arena offset \(offset) (+\(n)) out of 0..<\(arena.count * 8)")
    }

    @inline(__always)
    func load<T>(_ offset: Int, as type: T.Type) -> T {
        checkArena(offset, bytes: MemoryLayout<T>.size)
        // Safe: in the arena (checked above in debug and fuzz builds); `T` is a plain value.
        return bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    @inline(__always)
    func store<T>(_ value: T, at offset: Int) {
        checkArena(offset, bytes: MemoryLayout<T>.size)
        // Safe: as for `load`; a plain value needs no deinitialising of what it overwrites.
        bytes.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    func int32(_ offset: Int) -> Int { Int(load(offset, as: Int32.self)) }
    func setInt32(_ value: Int, at offset: Int) { store(Int32(value), at: offset) }

    /// A new, empty block: its header and rate-limit buckets.
    func newBlock() -> Int {
        let block = allocate(bytes: seriesStart)
        setInt32(0, at: block + BlockLayout.seriesCount)
        setInt32(seriesStart, at: block + BlockLayout.usedBytes)
        setInt32(seriesStart, at: block + BlockLayout.capacityBytes)
        store(tick, at: block + BlockLayout.lastTouched)
        for (r, burst) in rateBursts.enumerated() { store(TokenBucket(burst: burst), at: block + BlockLayout.headerBytes + r * BlockLayout.tokenBytes) }
        return block
    }

    /// `n` (a multiple of 8) zeroed bytes at the arena's end; returns their offset.
    func allocate(bytes n: Int) -> Int {
        let offset = arena.count * 8
        arena.append(repeating: 0, count: n / 8)
        return offset
    }

    /// The records of device `slot`'s series, in the order they were added.
    func records(of slot: Int) -> [Int] {
        let block = devices[slot].block
        var out: [Int] = []
        var record = block + seriesStart
        for _ in 0..<int32(block + BlockLayout.seriesCount) {
            out.append(record)
            record += int32(record + RecordLayout.recordBytes)
        }
        return out
    }

    /// Device `slot`'s block, with room for `n` more bytes: grown in place when it is the
    /// arena's last block, else moved to the arena's end with twice the room.
    func makeRoom(bytes n: Int, inBlockOf slot: Int) -> Int {
        let block = devices[slot].block
        let used = int32(block + BlockLayout.usedBytes)
        let capacity = int32(block + BlockLayout.capacityBytes)
        if used + n <= capacity { return block }
        if block + capacity == arena.count * 8 {
            _ = allocate(bytes: used + n - capacity)
            setInt32(used + n, at: block + BlockLayout.capacityBytes)
            return block
        }
        let newCapacity = Swift.max(capacity * 2, used + n)
        let moved = allocate(bytes: newCapacity)
        checkArena(block, bytes: used)
        // Safe: `allocate` just added `newCapacity >= used` bytes at `moved`, past the old
        // end, so the block (`used` bytes, in the arena) and its new place do not overlap.
        (bytes + moved).copyMemory(from: bytes + block, byteCount: used)
        setInt32(newCapacity, at: moved + BlockLayout.capacityBytes)
        garbageBytes += capacity
        devices[slot].block = moved
        deviceIndex[indexPosition(of: slot, hash: FilterEngine.hash(devices[slot].name))].block = moved
        if lastSlot == slot { lastBlock = moved }
        nextGuess = -1
        return moved
    }

    func evictLeastRecentlySeen() {
        rebuild(keepingTouchedAfter: tick > UInt64(maxDevices / 2) ? tick - UInt64(maxDevices / 2) : 0)
    }

    /// Rebuilds the state with the devices touched after `keepAfter` — when evicting,
    /// those seen in the last `maxDevices / 2` changes of device, so at least half go — laid out
    /// afresh: blocks packed, dedup windows in a new pool, only the series and buckets
    /// still referred to. The open buckets of devices that go are emitted first.
    func rebuild(keepingTouchedAfter keepAfter: UInt64) {
        var newArena = FlatBuffer<UInt64>(capacity: Swift.max(1, arena.count - garbageBytes / 8))
        var newDevices: [DeviceState] = []
        var newSeries: [SeriesState] = []
        var newBuckets = FlatBuffer<BucketState>(capacity: buckets.count)
        var newPool = FlatBuffer<Int64>(capacity: dedupPool.count)
        var newLastSlot = -1
        for slot in devices.indices {
            let block = devices[slot].block
            if load(block + BlockLayout.lastTouched, as: UInt64.self) <= keepAfter {
                for record in records(of: slot) {
                    closeAllBuckets(ofSeries: int32(record + RecordLayout.series))
                    rememberEmitted(ofSeries: int32(record + RecordLayout.series))
                }
                continue
            }
            let newSlot = newDevices.count
            if slot == lastSlot { newLastSlot = newSlot }
            let used = int32(block + BlockLayout.usedBytes)
            let moved = newArena.count * 8
            newArena.append(repeating: 0, count: used / 8)
            checkArena(block, bytes: used)
            // The new arena's memory: every offset below is inside the block just copied
            // to `moved ..< moved + used` (records and stages are walked by their own sizes,
            // checked in debug and fuzz builds), and `newArena` does not grow meanwhile.
            let to = UnsafeMutableRawPointer(newArena.base)
            (to + moved).copyMemory(from: bytes + block, byteCount: used) // Safe: two buffers, both `used` long.
            to.storeBytes(of: Int32(used), toByteOffset: moved + BlockLayout.capacityBytes, as: Int32.self)
            var record = moved + seriesStart
            for _ in 0..<Int(to.load(fromByteOffset: moved + BlockLayout.seriesCount, as: Int32.self)) {
                checkBounds(record + RecordLayout.headerBytes <= moved + used, "record past its block")
                let old = Int(to.load(fromByteOffset: record + RecordLayout.series, as: Int32.self))
                to.storeBytes(of: Int32(newSeries.count), toByteOffset: record + RecordLayout.series, as: Int32.self)
                newSeries.append(SeriesState(device: newSlot, metric: series[old].metric, record: record - moved))
                var at = record + RecordLayout.headerBytes
                for _ in 0..<Int(to.load(fromByteOffset: record + RecordLayout.stageCount, as: Int32.self)) {
                    let kind = StageLayout.kind(to.load(fromByteOffset: at + StageLayout.packed, as: UInt32.self))
                    checkBounds(at + StageLayout.bytes(kind) <= moved + used, "stage past its block")
                    switch kind {
                    case .dedup:
                        // The window's times, oldest first, into a segment of the new pool.
                        var w = to.loadUnaligned(fromByteOffset: at + StageLayout.headerBytes, as: DedupWindow.self)
                        let base = newPool.count
                        newPool.append(repeating: 0, count: w.capacity)
                        for j in 0..<w.count { newPool[base + j] = dedupPool[w.slot(j)] }
                        w.base = base
                        w.start = 0
                        to.storeBytes(of: w, toByteOffset: at + StageLayout.headerBytes, as: DedupWindow.self)
                    case .downsample:
                        var bucket = buckets[Int(to.load(fromByteOffset: at + StageLayout.aux, as: Int32.self))]
                        bucket.series = newSeries.count - 1
                        to.storeBytes(of: Int32(newBuckets.count), toByteOffset: at + StageLayout.aux, as: Int32.self)
                        newBuckets.append(bucket)
                    case .range, .deadband, .rate:
                        break
                    }
                    at += StageLayout.bytes(kind)
                }
                record += Int(to.load(fromByteOffset: record + RecordLayout.recordBytes, as: Int32.self))
            }
            var device = devices[slot]
            device.block = moved
            newDevices.append(device) // (`lookup` holds offsets within the block: unchanged)
        }
        devices = newDevices
        series = newSeries
        arena.deallocate()
        arena = newArena
        garbageBytes = 0
        buckets.deallocate()
        buckets = newBuckets
        dedupPool.deallocate()
        dedupPool = newPool
        reindexDevices(capacity: devices.count * 2 + 2)
        lastSlot = newLastSlot
        lastBlock = newLastSlot >= 0 ? devices[newLastSlot].block : -1
        lastDeviceBits = lastBlock >= 0 ? StringBits(devices[newLastSlot].name) : StringBits()
        nextGuess = -1
    }

    /// The stages of series `s`: (kind, where the stage is).
    func stagesOf(series s: Int) -> [(kind: OpParams.Kind, at: Int)] {
        let record = devices[series[s].device].block + series[s].record
        var out: [(kind: OpParams.Kind, at: Int)] = []
        var at = record + RecordLayout.headerBytes
        for _ in 0..<int32(record + RecordLayout.stageCount) {
            let kind = StageLayout.kind(load(at + StageLayout.packed, as: UInt32.self))
            out.append((kind, at))
            at += StageLayout.bytes(kind)
        }
        return out
    }
}

extension FilterEngine {
    /// A device's block: this header (32 bytes), one `TokenBucket` per rate-limit rule (16
    /// bytes each), then its series records. Offsets in bytes.
    enum BlockLayout {
        static let seriesCount = 0 // Int32
        static let usedBytes = 4 // Int32: header, buckets and records
        static let capacityBytes = 8 // Int32: what the block may fill before it must move
        // 12..<16: unused
        static let lastTouched = 16 // UInt64: the tick when the readings last came to this device
        static let lastRecord = 24 // Int32: where the last series record is (from the block's start)
        static let headerBytes = 32
        static let tokenBytes = 16
    }

    /// A series record: this header (32 bytes), then its stages.
    enum RecordLayout {
        static let bits = 0 // StringBits of the metric name (its series keeps it alive)
        static let series = 16 // Int32: the series' index in `series`
        static let recordBytes = 20 // Int32: header and stages
        static let stageCount = 24 // Int32
        static let next = 28 // Int32: the next record in the block (after the last, the first)
        static let headerBytes = 32
    }

    /// A stage: `op << 3 | kind` and a number (the bucket of a downsample stage, else -1),
    /// then the state of a dedup (`DedupWindow`) or deadband (`DeadbandState`) stage.
    enum StageLayout {
        static let packed = 0 // UInt32
        static let aux = 4 // Int32
        static let headerBytes = 8
        static let stateBytes = 24

        static func pack(kind: OpParams.Kind, op: Int) -> UInt32 { UInt32(op) << 3 | UInt32(kind.rawValue) }

        /// The kinds' raw values, for switching on a packed stage.
        static let range = UInt32(OpParams.Kind.range.rawValue)
        static let dedup = UInt32(OpParams.Kind.dedup.rawValue)
        static let deadband = UInt32(OpParams.Kind.deadband.rawValue)
        static let rate = UInt32(OpParams.Kind.rate.rawValue)

        @inline(__always)
        static func kind(_ packed: UInt32) -> OpParams.Kind {
            OpParams.Kind(rawValue: UInt8(truncatingIfNeeded: packed & 7)) ?? .range
        }

        @inline(__always)
        static func bytes(_ kind: OpParams.Kind) -> Int {
            kind == .dedup || kind == .deadband ? headerBytes + stateBytes : headerBytes
        }
    }
}
