/// The state and the stages behind `FilterChain`, which documents what the filters do;
/// this type is about how they do it fast.
///
/// Each rule is compiled to a list of single-purpose operations (`Op`); a series gets one
/// stage per operation of every rule that matches it.
///
/// **Layout.** With thousands of devices, the payloads being parsed push the filters'
/// state out of the caches between two visits of a device, so what counts is how many
/// cache lines a payload needs and how many of them must be loaded one after the other.
/// Each device's state is therefore one block
/// of bytes in `arena`: a header, the device's rate-limit buckets, then one record per
/// series — the metric name's stored bits (see `StringBits`), then each stage with its
/// state in line (a dedup window's header, a deadband's last value). A payload goes from
/// the device index entry to the block, and from a dedup window to its times in
/// `dedupPool`; everything else it needs is in the block, next to each other. Downsample
/// buckets, which `flushDue` scans, stay in `buckets`.
///
/// A block that needs room for a new series grows in place when it is the arena's last,
/// else moves to the end (twice as big); the space it leaves is reclaimed by a rebuild,
/// as are forgotten devices (eviction).
///
/// Judging a reading touches no reference counts, makes no uniqueness or bounds checks
/// (bounds are asserted in debug builds, where the tests run) and copies no strings.
///
/// A class, because the state lives in `FlatBuffer`s whose memory it owns (freed in
/// `deinit`). `FilterChain` copies an engine that is shared before mutating it, so to its
/// users it is still a value.
final class FilterEngine: @unchecked Sendable {
    // @unchecked Sendable: only `FilterChain` holds engines, and it copies a shared one
    // before any mutation (copy on write), so an engine two threads can reach is never
    // mutated. `@exclusivity(unchecked)` on the state below: every mutation comes from a
    // `mutating` method of the one chain that owns the engine, which Swift's static
    // exclusivity already serialises; the dynamic check would cost a runtime call per
    // access on the per-reading path.

    let rules: [FilterRule]
    @exclusivity(unchecked) var maxDevices = 100_000
    @exclusivity(unchecked) var maxMetricsPerDevice = 4_096
    @exclusivity(unchecked) var maxDedupEntriesPerSeries = 4_096

    private let ops: [Op]
    /// `ops.isEmpty`, without loading the array.
    private let noOps: Bool
    /// `ops` as plain numbers, for the per-reading path.
    private let params: FlatBuffer<OpParams>
    private let opsOfRule: [Range<Int>]
    private let globs: [NameGlob?]
    /// The burst of each rate-limit rule, by its `slot` (one bucket per rule in a block).
    private let rateBursts: [Double]
    /// Where a block's first series record starts: after the header and the rate-limit
    /// buckets.
    private let seriesStart: Int
    /// Open-addressing index of `devices` by name (a hash of the bytes, linear probing):
    /// cheaper than a Dictionary's SipHash on this path, which runs once per payload.
    @exclusivity(unchecked) private var deviceIndex = FlatBuffer(repeating: DeviceIndexEntry(), count: 64)
    @exclusivity(unchecked) private var devices: [DeviceState] = []
    /// Every series' names and where its record is, for the paths that need names.
    @exclusivity(unchecked) private var series: [SeriesState] = []
    /// The devices' blocks (see the type's documentation), addressed by byte offset.
    @exclusivity(unchecked) private var arena = FlatBuffer<UInt64>()
    /// Bytes of `arena` that blocks left behind when they moved.
    @exclusivity(unchecked) private var garbageBytes = 0
    /// The dedup windows' times: one ring segment per window in one pool, so recording
    /// a time touches no per-series allocation. A window that grows moves to a new
    /// segment and leaves the old one behind; a window's old segments add up to less
    /// than its current one, so the pool is at most twice what the windows use, and
    /// rebuilds drop the garbage. The pool itself grows four-fold when full
    /// (`growPool`): every growth copies it into fresh memory, and windows grow often.
    @exclusivity(unchecked) private var dedupPool = FlatBuffer<Int64>()
    @exclusivity(unchecked) private var buckets = FlatBuffer<BucketState>()
    @exclusivity(unchecked) private var tick: UInt64 = 0
    /// A copy of the last device's long name that readings carry (see
    /// `deviceBlockSlowly`), which keeps `lastDeviceBits` valid when they are its bits.
    @exclusivity(unchecked) private var lastDevice = ""
    /// The bits of the last device's name: of its name in `devices`, or of `lastDevice`.
    @exclusivity(unchecked) private var lastDeviceBits = StringBits()
    @exclusivity(unchecked) private var lastSlot = -1
    /// `lastSlot`'s block, or -1.
    @exclusivity(unchecked) private var lastBlock = -1
    /// The series record of `lastBlock` to compare first (see `seriesRecord`), or -1.
    @exclusivity(unchecked) private var nextGuess = -1
    /// The range operation behind the last `.deadLetter` outcome.
    @exclusivity(unchecked) private var deadLetterOp = 0
    /// Completed buckets not yet handed out.
    @exclusivity(unchecked) private var ready: [Reading] = []
    /// The last emitted bucket of downsampled series whose device was evicted, so a late
    /// reading of a returning device cannot emit a bucket a second time. Bounded: cleared
    /// when it reaches `4 * maxDevices` entries.
    @exclusivity(unchecked) private var emittedBeforeEviction: [SeriesKey: Int64] = [:]
    /// How many buckets are open, and the earliest end among them.
    @exclusivity(unchecked) private var openBuckets = 0
    @exclusivity(unchecked) private var nextBucketEnd = Int64.max

    init(rules: [FilterRule]) {
        precondition(MemoryLayout<Reading>.offset(of: \Reading.device) == FilterEngine.deviceOffset
                     && MemoryLayout<Reading>.offset(of: \Reading.metric) == FilterEngine.metricOffset,
                     "Reading's layout changed: update FilterEngine's name offsets")
        precondition(MemoryLayout<DedupWindow>.size <= StageLayout.stateBytes && MemoryLayout<DeadbandState>.size <= StageLayout.stateBytes
                     && MemoryLayout<TokenBucket>.size <= BlockLayout.tokenBytes && MemoryLayout<StringBits>.size == 16
                     && DedupWindow.layoutHolds,
                     "filter state outgrew its room in a block")
        self.rules = rules
        self.globs = rules.map { try? NameGlob($0.match) }
        var ops: [Op] = []
        var ranges: [Range<Int>] = []
        var rateBursts: [Double] = []
        for (index, rule) in rules.enumerated() {
            let first = ops.count
            if let range = rule.range {
                ops.append(.range(min: range.min ?? -.infinity, max: range.max ?? .infinity, rule: index))
            }
            if let window = rule.dedupWindowMs, window > 0 {
                ops.append(.dedup(windowMs: window))
            }
            if let deadband = rule.deadband {
                ops.append(.deadband(abs: deadband.abs ?? 0, fraction: deadband.percent.map { $0 / 100 } ?? -1,
                                     heartbeatMs: max(0, deadband.heartbeatMs ?? 0)))
            }
            if let rate = rule.rateLimitPerSecond, rate > 0, rate.isFinite {
                ops.append(.rate(perMs: rate / 1000, burst: max(1, rate), slot: rateBursts.count))
                rateBursts.append(max(1, rate))
            }
            if let downsample = rule.downsample, downsample.bucketMs > 0 {
                ops.append(.downsample(bucketMs: downsample.bucketMs, aggregate: downsample.aggregate))
            }
            ranges.append(first..<ops.count)
        }
        self.ops = ops
        noOps = ops.isEmpty
        var params = FlatBuffer<OpParams>(capacity: ops.count)
        for op in ops { params.append(OpParams(op)) }
        self.params = params
        self.opsOfRule = ranges
        self.rateBursts = rateBursts
        seriesStart = BlockLayout.headerBytes + rateBursts.count * BlockLayout.tokenBytes
    }

    /// An independent engine in the same state as `other`.
    init(copying other: FilterEngine) {
        rules = other.rules
        maxDevices = other.maxDevices
        maxMetricsPerDevice = other.maxMetricsPerDevice
        maxDedupEntriesPerSeries = other.maxDedupEntriesPerSeries
        ops = other.ops
        noOps = other.noOps
        params = other.params.copy()
        opsOfRule = other.opsOfRule
        globs = other.globs
        rateBursts = other.rateBursts
        seriesStart = other.seriesStart
        deviceIndex = other.deviceIndex.copy()
        devices = other.devices
        series = other.series
        arena = other.arena.copy()
        garbageBytes = other.garbageBytes
        dedupPool = other.dedupPool.copy()
        buckets = other.buckets.copy()
        tick = other.tick
        lastDevice = other.lastDevice
        lastDeviceBits = other.lastDeviceBits
        lastSlot = other.lastSlot
        lastBlock = other.lastBlock
        nextGuess = other.nextGuess
        deadLetterOp = other.deadLetterOp
        ready = other.ready
        emittedBeforeEviction = other.emittedBeforeEviction
        openBuckets = other.openBuckets
        nextBucketEnd = other.nextBucketEnd
    }

    deinit {
        params.deallocate()
        deviceIndex.deallocate()
        arena.deallocate()
        dedupPool.deallocate()
        buckets.deallocate()
    }

    // MARK: - Judging readings

    /// Runs one reading through the stages of its series. For `.deadLetter`,
    /// `deadLetterReason(for:)` says why.
    func judge(_ reading: borrowing Reading) -> FilterResults.Outcome {
        withUnsafePointer(to: reading) { judge(at: $0) }
    }

    /// `judge(_:)` for a reading in memory the caller keeps alive: reading its fields in
    /// place copies (and retains) none of its strings.
    @inline(__always)
    func judge(at pointer: UnsafePointer<Reading>) -> FilterResults.Outcome {
        if noOps { return .pass }
        // The names' stored bits, read in place: the usual lookups compare only those,
        // so no string is retained or released per reading.
        let raw = UnsafeRawPointer(pointer)
        deviceBlock(raw.loadUnaligned(fromByteOffset: FilterEngine.deviceOffset, as: StringBits.self), of: pointer)
        let record = seriesRecord(raw.loadUnaligned(fromByteOffset: FilterEngine.metricOffset, as: StringBits.self), of: pointer)
        let block = lastBlock // (where adding the series may have moved it)
        let ts = pointer.pointee.ts
        let value = pointer.pointee.value
        let memory = bytes
        let stageCount = Int(memory.load(fromByteOffset: record &+ RecordLayout.stageCount, as: Int32.self))
        // Offsets within the arena: wrapping arithmetic, as none can overflow.
        var at = record &+ RecordLayout.headerBytes
        for _ in 0..<stageCount {
            // Each stage: its operation and kind packed (`op << 3 | kind`), the numbers of
            // the operation from `params`, the state (if any) in line after it.
            assert(at + StageLayout.headerBytes <= record + int32(record + RecordLayout.recordBytes), "stage past its record")
            let packed = memory.load(fromByteOffset: at, as: UInt32.self)
            let op = Int(packed >> 3)
            let p = params[op]
            // On the kind's raw value: `Kind(rawValue:)` would add a check that cannot fail.
            switch packed & 7 {
            case StageLayout.range:
                if !(value >= p.x && value <= p.y) {
                    deadLetterOp = op
                    return .deadLetter
                }
                at &+= StageLayout.headerBytes
            case StageLayout.dedup:
                if dedupSeen(at &+ StageLayout.headerBytes, ts: ts, window: p.n) {
                    return .dropped(.dedup)
                }
                at &+= StageLayout.headerBytes + StageLayout.stateBytes
            case StageLayout.deadband:
                let state = at &+ StageLayout.headerBytes
                var deadband = memory.loadUnaligned(fromByteOffset: state, as: DeadbandState.self)
                if !deadband.admit(ts: ts, value: value, abs: p.x, fraction: p.y, heartbeatMs: p.n) {
                    return .dropped(.deadband)
                }
                memory.storeBytes(of: deadband, toByteOffset: state, as: DeadbandState.self)
                at &+= StageLayout.headerBytes + StageLayout.stateBytes
            case StageLayout.rate:
                let state = block &+ BlockLayout.headerBytes &+ p.slot &* BlockLayout.tokenBytes
                var bucket = memory.loadUnaligned(fromByteOffset: state, as: TokenBucket.self)
                let taken = bucket.take(ts: ts, perMs: p.x, capacity: p.y)
                memory.storeBytes(of: bucket, toByteOffset: state, as: TokenBucket.self)
                if !taken { return .dropped(.rateLimit) }
                at &+= StageLayout.headerBytes
            default: // downsample, the only other kind
                let b = Int(memory.load(fromByteOffset: at &+ StageLayout.aux, as: Int32.self))
                return downsample(ts: ts, value: value, bucket: b, bucketMs: p.n)
            }
        }
        return .pass
    }

    /// Judges every reading of `readings`, in order, into `results`.
    func apply(_ readings: [Reading], into results: inout FilterResults) {
        let n = readings.count
        if results.outcomes.count != n {
            results.outcomes.removeAll(keepingCapacity: true)
            results.outcomes.append(contentsOf: repeatElement(.pass, count: n))
        }
        if !results.deadLetterReasons.isEmpty { results.deadLetterReasons.removeAll(keepingCapacity: true) }
        // Written through pointers: no per-reading copy of the reading, no uniqueness
        // check per outcome. Dead letters (rare) are noted and explained afterwards.
        var deadLetters: [(index: Int, op: Int)] = []
        readings.withUnsafeBufferPointer { batch in
            guard let first = batch.baseAddress else { return } // an empty batch
            results.outcomes.withUnsafeMutableBufferPointer { outcomes in
                for i in 0..<n {
                    let outcome = judge(at: first + i)
                    outcomes[i] = outcome
                    if case .deadLetter = outcome { deadLetters.append((i, deadLetterOp)) }
                }
            }
        }
        for (i, op) in deadLetters {
            results.deadLetterReasons.append(rangeReason(readings[i], op: op))
        }
    }

    /// Why the last reading judged `.deadLetter` (which must be `reading`) is one.
    func deadLetterReason(for reading: Reading) -> String {
        rangeReason(reading, op: deadLetterOp)
    }

    private func rangeReason(_ reading: Reading, op: Int) -> String {
        guard case .range(let min, let max, let rule) = ops[op] else { return "out of range" }
        let bound = reading.value < min ? "below the minimum \(min)" : "above the maximum \(max)"
        return "\(reading.device)/\(reading.metric): value \(reading.value) at \(reading.ts) is \(bound) (filter '\(rules[rule].match)' range)"
    }

    /// The aggregates of buckets that are complete: those a later bucket of their series
    /// has started, and those whose end `now` has reached.
    func flushDue(now: Int64) -> [Reading] {
        if openBuckets > 0 && now >= nextBucketEnd {
            var earliest = Int64.max
            for b in buckets.indices where buckets[b].open {
                let end = bucketEnd(b)
                if now >= end {
                    closeBucket(b)
                } else if end < earliest {
                    earliest = end
                }
            }
            nextBucketEnd = earliest
        }
        return takeReady()
    }

    /// Every held bucket's aggregate, complete or not.
    func flushAll() -> [Reading] {
        if openBuckets > 0 {
            for b in buckets.indices where buckets[b].open { closeBucket(b) }
            nextBucketEnd = .max
        }
        return takeReady()
    }

    private func takeReady() -> [Reading] {
        if ready.isEmpty { return [] }
        let out = ready
        ready.removeAll()
        return out
    }

    // MARK: - Devices and series

    /// The arena's memory. Valid until the arena grows: on the per-reading path, only
    /// adding a series does that, and `judge` takes it again afterwards.
    private var bytes: UnsafeMutableRawPointer {
        @inline(__always) get { UnsafeMutableRawPointer(arena.base) }
    }

    @inline(__always)
    private func load<T>(_ offset: Int, as type: T.Type) -> T {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= arena.count * 8, "arena offset \(offset) out of bounds")
        return bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    @inline(__always)
    private func store<T>(_ value: T, at offset: Int) {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= arena.count * 8, "arena offset \(offset) out of bounds")
        bytes.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    private func int32(_ offset: Int) -> Int { Int(load(offset, as: Int32.self)) }
    private func setInt32(_ value: Int, at offset: Int) { store(Int32(value), at: offset) }

    /// Where a reading's names are in its memory, for reading their bits in place.
    /// (Checked against the layout when an engine is made.)
    private static var deviceOffset: Int { 0 }
    private static var metricOffset: Int { 16 }

    /// Makes `lastSlot` and `lastBlock` the reading's device; consecutive readings of one
    /// device (a payload's) reuse them without a lookup. `tick` counts the changes of
    /// device, and a device's last-seen tick moves with them: precise enough for choosing
    /// whom to evict.
    @inline(__always)
    private func deviceBlock(_ bits: StringBits, of reading: UnsafePointer<Reading>) {
        // Same device as the last reading: the same stored bits (see `StringBits`).
        if lastBlock >= 0 && bits == lastDeviceBits { return }
        deviceBlockSlowly(bits, of: reading)
    }

    /// (The name is read through `reading` only when its bits are not enough: a short
    /// name needs no string at all, so none is retained.)
    private func deviceBlockSlowly(_ bits: StringBits, of reading: UnsafePointer<Reading>) {
        let small = FilterEngine.hash(smallBits: bits)
        // A long name may be another copy of the last device's: keep this copy, so the
        // payload's next readings compare equal by their bits.
        if small == nil && lastBlock >= 0 && reading.pointee.device == devices[lastSlot].name {
            lastDevice = reading.pointee.device
            lastDeviceBits = bits
            return
        }
        tick &+= 1
        let hash = small ?? FilterEngine.hash(reading.pointee.device)
        var position = findDevice(bits, hash: hash, of: reading)
        if position < 0 { position = addDevice(reading.pointee.device, hash: hash) }
        let entry = deviceIndex[position]
        // The stored name's bits: `devices` keeps that string alive, so the name needs
        // no retaining here (`lastDevice` is only for a long name's other copies).
        lastDeviceBits = entry.bits
        lastSlot = Int(entry.slot)
        lastBlock = entry.block
        store(tick, at: entry.block &+ BlockLayout.lastTouched)
        // The payload's first metric is most likely the device's first.
        nextGuess = int32(entry.block &+ BlockLayout.seriesCount) > 0 ? entry.block &+ seriesStart : -1
    }

    /// Adds the device `name` (evicting first if there are `maxDevices`); returns its
    /// position in the index.
    private func addDevice(_ name: String, hash: UInt64) -> Int {
        if devices.count >= maxDevices { evictLeastRecentlySeen() }
        let slot = devices.count
        devices.append(DeviceState(name: name, block: newBlock()))
        insertDevice(slot, hash: hash)
        return indexPosition(of: slot, hash: hash)
    }

    /// A hash of the name's UTF-8 bytes, the same whichever way Swift stores the string.
    /// A name of up to 15 bytes is two words, zero-padded (`hash(short:_:count:)`): for
    /// a string stored in line those are its stored bits, so the usual name is hashed
    /// without reading its bytes one by one. Longer names go eight bytes at a time.
    @inline(__always)
    static func hash(_ name: String) -> UInt64 {
        if let h = hash(smallBits: StringBits(name)) { return h }
        return name.utf8.withContiguousStorageIfAvailable { hash(bytes: UnsafeRawBufferPointer($0)) }
            ?? Array(name.utf8).withUnsafeBytes { hash(bytes: $0) }
    }

    /// The hash of a string stored in line (a "small" string: its bytes in the two
    /// words, the count in the top byte's low half, bit 61 set), or nil for another.
    /// `FilterEngine.init` checks that this layout is the platform's.
    @inline(__always)
    private static func hash(smallBits bits: StringBits) -> UInt64? {
        guard smallLayoutHolds, bits.b >> 61 & 1 == 1 else { return nil }
        return hash(short: bits.a, bits.b & 0x00FF_FFFF_FFFF_FFFF, count: Int(bits.b >> 56 & 0xF))
    }

    /// Whether small strings are laid out as `hash(smallBits:)` reads them (64-bit little
    /// endian, as on every platform Weir builds for). Computed, not stored: a global
    /// would cost a lazy-initialisation check on every call.
    @inline(__always)
    private static var smallLayoutHolds: Bool {
        #if _endian(little) && _pointerBitWidth(_64)
        return true
        #else
        return false
        #endif
    }

    @inline(__always)
    private static func hash(short w0: UInt64, _ w1: UInt64, count: Int) -> UInt64 {
        mix((w0 &* 0x9E37_79B9_7F4A_7C15) ^ ((w1 ^ UInt64(count)) &* 0xC2B2_AE3D_27D4_EB4F).rotateLeft(31))
    }

    static func hash(bytes: UnsafeRawBufferPointer) -> UInt64 {
        let n = bytes.count
        if n <= 15 {
            var w0: UInt64 = 0, w1: UInt64 = 0
            for (i, byte) in bytes.enumerated() {
                if i < 8 { w0 |= UInt64(byte) << (8 * i) } else { w1 |= UInt64(byte) << (8 * (i - 8)) }
            }
            return hash(short: w0, w1, count: n)
        }
        let p = bytes.baseAddress! // n > 15
        var h = 0x9E37_79B9_7F4A_7C15 &* UInt64(n)
        var i = 0
        while i + 8 <= n {
            h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 29
            i += 8
        }
        // The last (overlapping) word covers the tail.
        if i < n { h = (h ^ p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)) &* 0xC4CE_B9FE_1A85_EC53 }
        return mix(h)
    }

    /// MurmurHash3's 64-bit finaliser.
    @inline(__always)
    private static func mix(_ x: UInt64) -> UInt64 {
        var h = x
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    /// The position in `deviceIndex` of device `slot`, whose name hashes to `hash`.
    private func indexPosition(of slot: Int, hash: UInt64) -> Int {
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while deviceIndex[i].slot != Int32(slot) { i = (i + 1) & mask }
        return i
    }

    /// The position in `deviceIndex` of the device of `reading` (whose name's bits are
    /// `bits`), or -1.
    @inline(__always)
    private func findDevice(_ bits: StringBits, hash: UInt64, of reading: UnsafePointer<Reading>) -> Int {
        let mask = deviceIndex.count &- 1
        let tag = UInt32(truncatingIfNeeded: hash >> 32)
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = deviceIndex[i]
            if entry.slot < 0 { return -1 }
            if entry.tag == tag && (entry.bits == bits || devices[Int(entry.slot)].name == reading.pointee.device) {
                return i
            }
            i = (i &+ 1) & mask
        }
    }

    /// Adds `slot` to the index, growing it to stay at most half full.
    private func insertDevice(_ slot: Int, hash: UInt64) {
        if (devices.count + 1) * 2 > deviceIndex.count {
            reindexDevices(capacity: deviceIndex.count * 2)
            return // reindexing covered `slot` (it is already in `devices`)
        }
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while deviceIndex[i].slot >= 0 { i = (i + 1) & mask }
        deviceIndex[i] = DeviceIndexEntry(slot: slot, device: devices[slot], hash: hash)
    }

    private func reindexDevices(capacity: Int) {
        var size = 64
        while size < capacity { size *= 2 }
        deviceIndex.deallocate()
        deviceIndex = FlatBuffer(repeating: DeviceIndexEntry(), count: size)
        let mask = size - 1
        for slot in devices.indices {
            let hash = FilterEngine.hash(devices[slot].name)
            var i = Int(truncatingIfNeeded: hash) & mask
            while deviceIndex[i].slot >= 0 { i = (i + 1) & mask }
            deviceIndex[i] = DeviceIndexEntry(slot: slot, device: devices[slot], hash: hash)
        }
    }

    /// A new, empty block: its header and rate-limit buckets.
    private func newBlock() -> Int {
        let block = allocate(bytes: seriesStart)
        setInt32(0, at: block + BlockLayout.seriesCount)
        setInt32(seriesStart, at: block + BlockLayout.usedBytes)
        setInt32(seriesStart, at: block + BlockLayout.capacityBytes)
        store(tick, at: block + BlockLayout.lastTouched)
        for (r, burst) in rateBursts.enumerated() { store(TokenBucket(burst: burst), at: block + BlockLayout.headerBytes + r * BlockLayout.tokenBytes) }
        return block
    }

    /// `n` (a multiple of 8) zeroed bytes at the arena's end; returns their offset.
    private func allocate(bytes n: Int) -> Int {
        let offset = arena.count * 8
        arena.append(repeating: 0, count: n / 8)
        return offset
    }

    /// The series record for the reading's metric in `lastBlock`, created on first sight.
    @inline(__always)
    private func seriesRecord(_ bits: StringBits, of reading: UnsafePointer<Reading>) -> Int {
        // Payloads of a device tend to list their metrics in the same order: the record
        // after the last match (or the device's first) is the likely one, compared by
        // its stored bits first (see `StringBits`).
        var record = nextGuess
        if record < 0 || load(record, as: StringBits.self) != bits {
            record = seriesRecordSlowly(reading.pointee.metric)
        }
        nextGuess = lastBlock &+ Int(load(record &+ RecordLayout.next, as: Int32.self))
        return record
    }

    /// The record of series `metric` of the last device, looked up by name or added.
    private func seriesRecordSlowly(_ metric: String) -> Int {
        let block = lastBlock
        let count = int32(block + BlockLayout.seriesCount)
        if count > 16 {
            if let found = devices[lastSlot].lookup?[metric] { return block + Int(found) }
        } else {
            let bits = StringBits(metric)
            var record = block + seriesStart
            for _ in 0..<count {
                if load(record + RecordLayout.bits, as: StringBits.self) == bits { return record }
                record += int32(record + RecordLayout.recordBytes)
            }
            // By the characters: a long name, or a copy made apart.
            record = block + seriesStart
            for _ in 0..<count {
                if series[int32(record + RecordLayout.series)].metric == metric { return record }
                record += int32(record + RecordLayout.recordBytes)
            }
        }
        return addSeries(metric: metric)
    }

    /// The records of device `slot`'s series, in the order they were added.
    private func records(of slot: Int) -> [Int] {
        let block = devices[slot].block
        var out: [Int] = []
        var record = block + seriesStart
        for _ in 0..<int32(block + BlockLayout.seriesCount) {
            out.append(record)
            record += int32(record + RecordLayout.recordBytes)
        }
        return out
    }

    /// Creates the series `metric` of the last device and its stages; returns its
    /// record (moving the device's block if it has no room).
    private func addSeries(metric: String) -> Int {
        if int32(lastBlock + BlockLayout.seriesCount) >= maxMetricsPerDevice {
            // A device inventing metric names without end: forget its series (open
            // buckets are emitted first) and rebuild without them. Every device has been
            // touched (`tick` is at least 1 then), so none goes.
            for record in records(of: lastSlot) { closeAllBuckets(ofSeries: int32(record + RecordLayout.series)) }
            setInt32(0, at: lastBlock + BlockLayout.seriesCount)
            setInt32(seriesStart, at: lastBlock + BlockLayout.usedBytes)
            devices[lastSlot].lookup = nil
            rebuild(keepingTouchedAfter: 0)
        } else if garbageBytes > 1 << 12 && garbageBytes * 2 > arena.count * 8 {
            rebuild(keepingTouchedAfter: 0) // reclaim what moved blocks left behind
        }
        let slot = lastSlot
        let name = devices[slot].name
        let text = NameGlob.seriesText(device: name, metric: metric)
        // The stages: (packed kind and operation, the bucket of a downsample stage).
        var stages: [(packed: UInt32, bucket: Int)] = []
        var recordBytes = RecordLayout.headerBytes
        rules: for rule in rules.indices where globs[rule]?.matches(series: text) == true {
            for op in opsOfRule[rule] {
                let kind = params[op].kind
                var bucket = -1
                if case .downsample = ops[op] {
                    var state = BucketState(series: series.count, op: op)
                    if !emittedBeforeEviction.isEmpty,
                       let through = emittedBeforeEviction.removeValue(forKey: SeriesKey(device: name, metric: metric)) {
                        state.emittedAny = true
                        state.emittedThrough = through
                    }
                    bucket = buckets.count
                    buckets.append(state)
                }
                stages.append((StageLayout.pack(kind: kind, op: op), bucket))
                recordBytes += StageLayout.bytes(kind)
                if kind == .downsample { break rules } // downsample ends the chain
            }
        }
        let block = makeRoom(bytes: recordBytes, inBlockOf: slot)
        let record = block + int32(block + BlockLayout.usedBytes)
        store(StringBits(metric), at: record + RecordLayout.bits)
        setInt32(series.count, at: record + RecordLayout.series)
        setInt32(recordBytes, at: record + RecordLayout.recordBytes)
        setInt32(stages.count, at: record + RecordLayout.stageCount)
        // Linked after the block's last record, before its first.
        setInt32(seriesStart, at: record + RecordLayout.next)
        if int32(block + BlockLayout.seriesCount) > 0 {
            setInt32(record - block, at: block + int32(block + BlockLayout.lastRecord) + RecordLayout.next)
        }
        setInt32(record - block, at: block + BlockLayout.lastRecord)
        var at = record + RecordLayout.headerBytes
        for (packed, bucket) in stages {
            let kind = StageLayout.kind(packed)
            store(packed, at: at + StageLayout.packed)
            setInt32(bucket, at: at + StageLayout.aux)
            switch kind {
            case .dedup:
                store(DedupWindow(base: dedupPool.count, capacity: DedupWindow.initialCapacity), at: at + StageLayout.headerBytes)
                growPool(by: DedupWindow.initialCapacity)
            case .deadband:
                store(DeadbandState(), at: at + StageLayout.headerBytes)
            case .range, .rate, .downsample:
                break
            }
            at += StageLayout.bytes(kind)
        }
        setInt32(int32(block + BlockLayout.usedBytes) + recordBytes, at: block + BlockLayout.usedBytes)
        let count = int32(block + BlockLayout.seriesCount) + 1
        setInt32(count, at: block + BlockLayout.seriesCount)
        series.append(SeriesState(device: slot, metric: metric, record: record - block))
        if devices[slot].lookup != nil {
            devices[slot].lookup?[metric] = Int32(record - block)
        } else if count > 16 { // (as `seriesRecordSlowly` expects)
            // Past a few metrics a dictionary beats comparing names one by one.
            devices[slot].lookup = Dictionary(uniqueKeysWithValues: records(of: slot).map {
                (series[int32($0 + RecordLayout.series)].metric, Int32($0 - block))
            })
        }
        return record
    }

    /// Device `slot`'s block, with room for `n` more bytes: grown in place when it is the
    /// arena's last block, else moved to the arena's end with twice the room.
    private func makeRoom(bytes n: Int, inBlockOf slot: Int) -> Int {
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
        (bytes + moved).copyMemory(from: bytes + block, byteCount: used)
        setInt32(newCapacity, at: moved + BlockLayout.capacityBytes)
        garbageBytes += capacity
        devices[slot].block = moved
        deviceIndex[indexPosition(of: slot, hash: FilterEngine.hash(devices[slot].name))].block = moved
        if lastSlot == slot { lastBlock = moved }
        nextGuess = -1
        return moved
    }

    private func evictLeastRecentlySeen() {
        rebuild(keepingTouchedAfter: tick > UInt64(maxDevices / 2) ? tick - UInt64(maxDevices / 2) : 0)
    }

    /// Rebuilds the state with the devices touched after `keepAfter` — when evicting,
    /// those seen in the last `maxDevices / 2` changes of device, so at least half go — laid out
    /// afresh: blocks packed, dedup windows in a new pool, only the series and buckets
    /// still referred to. The open buckets of devices that go are emitted first.
    private func rebuild(keepingTouchedAfter keepAfter: UInt64) {
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
            let to = UnsafeMutableRawPointer(newArena.base)
            (to + moved).copyMemory(from: bytes + block, byteCount: used)
            to.storeBytes(of: Int32(used), toByteOffset: moved + BlockLayout.capacityBytes, as: Int32.self)
            var record = moved + seriesStart
            for _ in 0..<Int(to.load(fromByteOffset: moved + BlockLayout.seriesCount, as: Int32.self)) {
                let old = Int(to.load(fromByteOffset: record + RecordLayout.series, as: Int32.self))
                to.storeBytes(of: Int32(newSeries.count), toByteOffset: record + RecordLayout.series, as: Int32.self)
                newSeries.append(SeriesState(device: newSlot, metric: series[old].metric, record: record - moved))
                var at = record + RecordLayout.headerBytes
                for _ in 0..<Int(to.load(fromByteOffset: record + RecordLayout.stageCount, as: Int32.self)) {
                    let kind = StageLayout.kind(to.load(fromByteOffset: at + StageLayout.packed, as: UInt32.self))
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
    private func stagesOf(series s: Int) -> [(kind: OpParams.Kind, at: Int)] {
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

    private func rememberEmitted(ofSeries s: Int) {
        for (kind, at) in stagesOf(series: s) where kind == .downsample {
            let b = int32(at + StageLayout.aux)
            guard buckets[b].emittedAny else { continue }
            if emittedBeforeEviction.count >= maxDevices * 4 { emittedBeforeEviction.removeAll() }
            emittedBeforeEviction[SeriesKey(device: devices[series[s].device].name, metric: series[s].metric)] = buckets[b].emittedThrough
        }
    }

    private func closeAllBuckets(ofSeries s: Int) {
        for (kind, at) in stagesOf(series: s) where kind == .downsample {
            closeBucket(int32(at + StageLayout.aux))
        }
    }

    // MARK: - Stages

    /// Whether `ts` was seen by the dedup window at byte `w` of the arena within
    /// `window` of its newest time; records it when not. The common case — a new latest
    /// time — writes one slot and reads none. Times that fell out of the window go only
    /// when the window is full (`makeRoom`), so stale ones linger until then; they are
    /// older than the window, so no time that is judged can match them.
    @inline(__always)
    private func dedupSeen(_ at: Int, ts: Int64, window: Int64) -> Bool {
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

    private func dedupSeenSlowly(_ at: Int, ts: Int64, window: Int64) -> Bool {
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
    private func makeRoom(dedup at: Int, window: Int64) -> Int {
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
    private func growPool(by n: Int) {
        if dedupPool.count + n > dedupPool.capacity {
            dedupPool.reserveCapacity(Swift.max(dedupPool.capacity * 4, dedupPool.count + n))
        }
        dedupPool.append(repeating: 0, count: n)
    }

    private func bucketSpec(_ b: Int) -> (bucketMs: Int64, aggregate: DownsampleSpec.Aggregate) {
        if case .downsample(let bucketMs, let aggregate) = ops[buckets[b].op] { return (bucketMs, aggregate) }
        return (1, .mean) // not reached: buckets belong to downsample stages only
    }

    private func bucketEnd(_ b: Int) -> Int64 {
        let (end, overflow) = buckets[b].start.addingReportingOverflow(bucketSpec(b).bucketMs)
        return overflow ? .max : end
    }

    @inline(__always)
    private func downsample(ts: Int64, value: Double, bucket b: Int, bucketMs: Int64) -> FilterResults.Outcome {
        // The usual case without a division: a time inside the open bucket (which starts
        // after anything emitted, so the checks of `downsampleSlowly` would let it in).
        // Updated in place: a bucket is two cache lines, and copying it out and back costs.
        let open = buckets.base + b
        let (offset, overflow) = ts.subtractingReportingOverflow(open.pointee.start)
        if open.pointee.open && !overflow && offset >= 0 && offset < bucketMs {
            open.pointee.aggregate.add(ts: ts, value: value)
            open.pointee.scaledSum += value * 0x1p-64
            return .held
        }
        return downsampleSlowly(ts: ts, value: value, bucket: b, bucketMs: bucketMs)
    }

    private func downsampleSlowly(ts: Int64, value: Double, bucket b: Int, bucketMs: Int64) -> FilterResults.Outcome {
        // A time so close to the start of Int64 that its bucket start does not exist (only
        // a broken clock writes it; the clock policy normally rejects it first).
        guard ts >= Int64.min + bucketMs else { return .dropped(.downsample) }
        var bucket = buckets[b]
        let start = WindowMath.start(of: ts, size: bucketMs)
        if bucket.emittedAny && start <= bucket.emittedThrough { return .dropped(.downsample) }
        if bucket.open {
            if start == bucket.start {
                bucket.aggregate.add(ts: ts, value: value)
                bucket.scaledSum += value * 0x1p-64
                buckets[b] = bucket
                return .held
            }
            if start < bucket.start { return .dropped(.downsample) }
            closeBucket(b)
            bucket = buckets[b]
        }
        bucket.start = start
        bucket.aggregate = WindowAggregate(ts: ts, value: value)
        bucket.scaledSum = value * 0x1p-64
        bucket.open = true
        buckets[b] = bucket
        openBuckets += 1
        let end = bucketEnd(b)
        if end < nextBucketEnd { nextBucketEnd = end }
        return .held
    }

    private func closeBucket(_ b: Int) {
        guard buckets[b].open else { return }
        let a = buckets[b].aggregate
        let value: Double
        switch bucketSpec(b).aggregate {
        case .mean:
            // A sum of huge finite values can overflow; the scaled sum cannot.
            value = a.mean.isFinite ? a.mean
                : Swift.min(.greatestFiniteMagnitude, Swift.max(-.greatestFiniteMagnitude, buckets[b].scaledSum / Double(a.count) * 0x1p64))
        case .min: value = a.min
        case .max: value = a.max
        case .last: value = a.lastValue
        }
        let s = buckets[b].series
        ready.append(Reading(device: devices[series[s].device].name, metric: series[s].metric, ts: buckets[b].start, value: value))
        buckets[b].open = false
        buckets[b].emittedAny = true
        buckets[b].emittedThrough = buckets[b].start
        openBuckets -= 1
    }
}

// MARK: - State types

/// One single-purpose operation of a rule, reduced to plain numbers for the hot path.
private enum Op: Sendable {
    /// `rule`: the rule's index, for the dead-letter reason.
    case range(min: Double, max: Double, rule: Int)
    case dedup(windowMs: Int64)
    /// `fraction < 0`: an absolute band.
    case deadband(abs: Double, fraction: Double, heartbeatMs: Int64)
    /// `slot`: which of a device's rate-limit buckets.
    case rate(perMs: Double, burst: Double, slot: Int)
    case downsample(bucketMs: Int64, aggregate: DownsampleSpec.Aggregate)
}

private struct DeviceState: Sendable {
    var name: String
    /// Where the device's block is in `FilterEngine.arena` (kept current in its index
    /// entry too).
    var block: Int
    /// Built once a device has many series (name → its record's offset in the block);
    /// comparing names one by one is faster below that.
    var lookup: [String: Int32]? = nil

    init(name: String, block: Int) {
        self.name = name
        self.block = block
    }
}

/// 32 bytes, so an entry never straddles two cache lines.
private struct DeviceIndexEntry: Sendable {
    /// The device's name as stored (`devices[slot].name` keeps it alive).
    var bits = StringBits()
    /// `devices[slot].block`.
    var block = -1
    var slot: Int32 = -1
    /// The high half of the name's hash: most entries that are not the name fail on it.
    var tag: UInt32 = 0

    init() {}

    init(slot: Int, device: DeviceState, hash: UInt64) {
        bits = StringBits(device.name)
        block = device.block
        self.slot = Int32(slot)
        tag = UInt32(truncatingIfNeeded: hash >> 32)
    }
}

/// A device's block: this header (32 bytes), one `TokenBucket` per rate-limit rule (16
/// bytes each), then its series records. Offsets in bytes.
private enum BlockLayout {
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
private enum RecordLayout {
    static let bits = 0 // StringBits of the metric name (its series keeps it alive)
    static let series = 16 // Int32: the series' index in `series`
    static let recordBytes = 20 // Int32: header and stages
    static let stageCount = 24 // Int32
    static let next = 28 // Int32: the next record in the block (after the last, the first)
    static let headerBytes = 32
}

/// A stage: `op << 3 | kind` and a number (the bucket of a downsample stage, else -1),
/// then the state of a dedup (`DedupWindow`) or deadband (`DeadbandState`) stage.
private enum StageLayout {
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

/// A string's 16 bytes as Swift stores them: the characters themselves for a short
/// string (up to 15 UTF-8 bytes, the names devices usually have), else a reference to
/// its storage. Equal bits mean equal strings as long as the string the stored bits came
/// from is alive (the engine keeps each: device names in `devices`, metric names in
/// `series`), since a live storage object is never reused; different bits mean nothing
/// (two copies of a long name), so a full comparison follows. Comparing two words is
/// what makes the usual lookup cheap: `String ==` calls into the runtime whenever the
/// strings differ.
private extension UInt64 {
    @inline(__always) func rotateLeft(_ k: UInt64) -> UInt64 { self << k | self >> (64 - k) }
}

private struct StringBits: Sendable, Equatable {
    var a: UInt64 = 0
    var b: UInt64 = 0

    init() {}

    @inline(__always) init(_ string: String) {
        (a, b) = unsafeBitCast(string, to: (UInt64, UInt64).self)
    }
}

private struct SeriesState: Sendable {
    var device: Int
    var metric: String
    /// Where the series' record is in its device's block (bytes from the block's start).
    var record: Int
}

/// An operation's kind and numbers, without an enum's payload to unpack.
private struct OpParams: Sendable {
    enum Kind: UInt8 { case range, dedup, deadband, rate, downsample }
    var kind: Kind
    /// range: min; deadband: abs; rate: tokens per ms.
    var x = 0.0
    /// range: max; deadband: fraction (< 0: absolute band); rate: burst.
    var y = 0.0
    /// dedup: window; deadband: heartbeat; downsample: bucket (ms).
    var n: Int64 = 0
    /// rate: which of a device's rate-limit buckets.
    var slot = 0

    init(_ op: Op) {
        switch op {
        case .range(let min, let max, _): kind = .range; x = min; y = max
        case .dedup(let windowMs): kind = .dedup; n = windowMs
        case .deadband(let abs, let fraction, let heartbeatMs): kind = .deadband; x = abs; y = fraction; n = heartbeatMs
        case .rate(let perMs, let burst, let slot): kind = .rate; x = perMs; y = burst; self.slot = slot
        case .downsample(let bucketMs, _): kind = .downsample; n = bucketMs
        }
    }
}

/// One series' dedup window: a sorted ring of times in `FilterEngine.dedupPool`, oldest
/// at `start`, `capacity` a power of two.
private struct DedupWindow: Sendable {
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
    private var base32: UInt32
    private var capacity32: UInt32
    private var start32: UInt32 = 0
    private var count32: UInt32 = 0
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

private struct DeadbandState: Sendable {
    var has = false
    var value = 0.0
    var ts: Int64 = 0

    /// Whether a reading (`newTs`, `newValue`) passes; remembers it when it does.
    mutating func admit(ts newTs: Int64, value newValue: Double, abs: Double, fraction: Double, heartbeatMs: Int64) -> Bool {
        var pass = !has
        if !pass {
            let change = Swift.abs(newValue - value)
            if fraction < 0 {
                pass = change > abs
            } else {
                pass = value == 0 ? change > 0 : change > fraction * Swift.abs(value)
            }
        }
        if !pass && heartbeatMs > 0 && newTs &- ts >= heartbeatMs { pass = true }
        if pass {
            value = newValue
            ts = has ? Swift.max(ts, newTs) : newTs
            has = true
        }
        return pass
    }
}

/// A device's rate-limit bucket for one rule: full (`burst` tokens) until its first
/// reading, refilled by event time.
private struct TokenBucket: Sendable {
    var tokens: Double
    /// The newest time seen; `Int64.min` before the first reading.
    var lastTs = Int64.min

    init(burst: Double) { tokens = burst }

    @inline(__always)
    mutating func take(ts: Int64, perMs: Double, capacity: Double) -> Bool {
        if ts > lastTs {
            if lastTs != .min { tokens = Swift.min(capacity, tokens + Double(ts &- lastTs) * perMs) }
            lastTs = ts
        }
        if tokens >= 1 {
            tokens -= 1
            return true
        }
        return false
    }
}

private struct BucketState: Sendable {
    /// The series and the downsample operation this bucket belongs to.
    var series: Int
    var op: Int
    var open = false
    var start: Int64 = 0
    var aggregate = WindowAggregate(ts: 0, value: 0)
    /// The sum times 2^-64, for a mean when the plain sum overflows.
    var scaledSum = 0.0
    var emittedAny = false
    var emittedThrough: Int64 = 0
}
