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
/// and copies no strings. Bounds are checked by `checkBounds` in debug builds (where the
/// tests run) and in builds that define `WEIR_CHECKED_BUFFERS` (the fuzzer's, `fuzz/run`);
/// every unchecked access says in a comment why it stays in bounds.
///
/// **Files.** This one holds the state and the per-reading path (`judge(at:)`), which
/// is where to start reading. The rest, by concern:
/// - `FilterEngine+Op.swift`: a rule compiled to operations (`Op`, `OpParams`);
/// - `FilterEngine+DeviceIndex.swift`: finding a reading's device (the name hash, the
///   open-addressing index, `DeviceState`);
/// - `FilterEngine+StringBits.swift`: the names' stored bits the usual lookups compare;
/// - `FilterEngine+Series.swift`: finding or adding a series record in a device's block;
/// - `FilterEngine+Arena.swift`: the block, record and stage layouts, reads and writes by
///   offset, blocks that grow or move, rebuilds and eviction;
/// - `FilterEngine+Dedup.swift`, `+Deadband.swift`, `+RateLimit.swift`,
///   `+Downsample.swift`: each stage's state and what it does with a reading.
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

    let ops: [Op]
    /// `ops.isEmpty`, without loading the array.
    let noOps: Bool
    /// `ops` as plain numbers, for the per-reading path.
    let params: FlatBuffer<OpParams>
    let opsOfRule: [Range<Int>]
    let globs: [NameGlob?]
    /// The burst of each rate-limit rule, by its `slot` (one bucket per rule in a block).
    let rateBursts: [Double]
    /// Where a block's first series record starts: after the header and the rate-limit
    /// buckets.
    let seriesStart: Int
    /// Open-addressing index of `devices` by name (a hash of the bytes, linear probing):
    /// cheaper than a Dictionary's SipHash on this path, which runs once per payload.
    @exclusivity(unchecked) var deviceIndex = FlatBuffer(repeating: DeviceIndexEntry(), count: 64)
    @exclusivity(unchecked) var devices: [DeviceState] = []
    /// Every series' names and where its record is, for the paths that need names.
    @exclusivity(unchecked) var series: [SeriesState] = []
    /// The devices' blocks (see the type's documentation), addressed by byte offset.
    @exclusivity(unchecked) var arena = FlatBuffer<UInt64>()
    /// Bytes of `arena` that blocks left behind when they moved.
    @exclusivity(unchecked) var garbageBytes = 0
    /// The dedup windows' times: one ring segment per window in one pool, so recording
    /// a time touches no per-series allocation. A window that grows moves to a new
    /// segment and leaves the old one behind; a window's old segments add up to less
    /// than its current one, so the pool is at most twice what the windows use, and
    /// rebuilds drop the garbage. The pool itself grows four-fold when full
    /// (`growPool`): every growth copies it into fresh memory, and windows grow often.
    @exclusivity(unchecked) var dedupPool = FlatBuffer<Int64>()
    @exclusivity(unchecked) var buckets = FlatBuffer<BucketState>()
    @exclusivity(unchecked) var tick: UInt64 = 0
    /// A copy of the last device's long name that readings carry (see
    /// `deviceBlockSlowly`), which keeps `lastDeviceBits` valid when they are its bits.
    @exclusivity(unchecked) var lastDevice = ""
    /// The bits of the last device's name: of its name in `devices`, or of `lastDevice`.
    @exclusivity(unchecked) var lastDeviceBits = StringBits()
    @exclusivity(unchecked) var lastSlot = -1
    /// `lastSlot`'s block, or -1.
    @exclusivity(unchecked) var lastBlock = -1
    /// The series record of `lastBlock` to compare first (see `seriesRecord`), or -1.
    @exclusivity(unchecked) var nextGuess = -1
    /// The range operation behind the last `.deadLetter` outcome.
    @exclusivity(unchecked) var deadLetterOp = 0
    /// Completed buckets not yet handed out.
    @exclusivity(unchecked) var ready: [Reading] = []
    /// The last emitted bucket of downsampled series whose device was evicted, so a late
    /// reading of a returning device cannot emit a bucket a second time. Bounded: cleared
    /// when it reaches `4 * maxDevices` entries.
    @exclusivity(unchecked) var emittedBeforeEviction: [SeriesKey: Int64] = [:]
    /// How many buckets are open, and the earliest end among them.
    @exclusivity(unchecked) var openBuckets = 0
    @exclusivity(unchecked) var nextBucketEnd = Int64.max

    init(rules: [FilterRule]) {
        precondition(MemoryLayout<Reading>.offset(of: \Reading.device) == FilterEngine.deviceOffset
                     && MemoryLayout<Reading>.offset(of: \Reading.metric) == FilterEngine.metricOffset,
                     "Reading's layout changed: update FilterEngine's name offsets")
        precondition(MemoryLayout<DedupWindow>.size <= StageLayout.stateBytes && MemoryLayout<DeadbandState>.size <= StageLayout.stateBytes
                     && MemoryLayout<TokenBucket>.size <= BlockLayout.tokenBytes && MemoryLayout<StringBits>.size == 16
                     && DedupWindow.layoutHolds,
                     "filter state outgrew its room in a block")
        precondition(FilterEngine.smallStringLayoutHolds, "String's in-line layout is not what FilterEngine.hash(smallBits:) reads")
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
        // Safe: the pointer is used only inside the closure, while `reading` is borrowed.
        withUnsafePointer(to: reading) { judge(at: $0) }
    }

    /// `judge(_:)` for a reading in memory the caller keeps alive: reading its fields in
    /// place copies (and retains) none of its strings.
    @inline(__always)
    func judge(at pointer: UnsafePointer<Reading>) -> FilterResults.Outcome {
        if noOps { return .pass }
        // The names' stored bits, read in place: the usual lookups compare only those,
        // so no string is retained or released per reading.
        // Safe: a `Reading` starts with its device's and its metric's 16 bytes (checked in
        // `init`); the bits are only compared, never made a String again.
        let raw = UnsafeRawPointer(pointer)
        deviceBlock(raw.loadUnaligned(fromByteOffset: FilterEngine.deviceOffset, as: StringBits.self), of: pointer)
        let record = seriesRecord(raw.loadUnaligned(fromByteOffset: FilterEngine.metricOffset, as: StringBits.self), of: pointer)
        let block = lastBlock // (where adding the series may have moved it)
        let ts = pointer.pointee.ts
        let value = pointer.pointee.value
        // The arena's memory, not re-read per stage: nothing below grows the arena. Every
        // access through it is checked by `checkArena` (debug and fuzz builds only).
        let memory = bytes
        checkArena(record, bytes: RecordLayout.headerBytes)
        let stageCount = Int(memory.load(fromByteOffset: record &+ RecordLayout.stageCount, as: Int32.self))
        // Offsets within the arena: wrapping arithmetic, as none can overflow.
        var at = record &+ RecordLayout.headerBytes
        for _ in 0..<stageCount {
            // Each stage: its operation and kind packed (`op << 3 | kind`), the numbers of
            // the operation from `params`, the state (if any) in line after it.
            checkBounds(at + StageLayout.headerBytes <= record + int32(record + RecordLayout.recordBytes), "stage past its record")
            checkArena(at, bytes: StageLayout.headerBytes)
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
                checkArena(state, bytes: MemoryLayout<DeadbandState>.size)
                var deadband = memory.loadUnaligned(fromByteOffset: state, as: DeadbandState.self)
                if !deadband.admit(ts: ts, value: value, abs: p.x, fraction: p.y, heartbeatMs: p.n) {
                    return .dropped(.deadband)
                }
                memory.storeBytes(of: deadband, toByteOffset: state, as: DeadbandState.self)
                at &+= StageLayout.headerBytes + StageLayout.stateBytes
            case StageLayout.rate:
                let state = block &+ BlockLayout.headerBytes &+ p.slot &* BlockLayout.tokenBytes
                checkArena(state, bytes: MemoryLayout<TokenBucket>.size)
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
                // Safe: `outcomes` and `batch` both have `n` elements (made so above).
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

    /// Where a reading's names are in its memory, for reading their bits in place.
    /// (Checked against the layout when an engine is made.)
    private static var deviceOffset: Int { 0 }
    private static var metricOffset: Int { 16 }
}
