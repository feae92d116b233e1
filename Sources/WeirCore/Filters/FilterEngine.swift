/// The state and the stages behind `FilterChain`, which documents what the filters do;
/// this type is about how they do it fast.
///
/// Each rule is compiled to a list of single-purpose operations (`Op`); a series gets one
/// stage per operation of every rule that matches it. The state lives in flat buffers
/// addressed by index — the device's index entry → its metrics (names compared by their
/// stored bits, see `StringBits`) → the series' stages → each stage's state — so judging
/// a reading touches no reference counts, makes no uniqueness or bounds checks (bounds
/// are asserted in debug builds) and copies no strings. Per device, the state is packed
/// into few cache lines: with thousands of devices, memory is most of the cost. Eviction
/// rebuilds the buffers.
///
/// A class, because the hot state lives in `FlatBuffer`s whose memory it owns (freed in
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
    /// `ops` as plain numbers, for the per-reading path.
    private let params: FlatBuffer<OpParams>
    private let opsOfRule: [Range<Int>]
    private let globs: [NameGlob?]
    private let rateRules: Int
    /// Open-addressing index of `devices` by name (FNV-1a of the bytes, linear probing):
    /// cheaper than a Dictionary's SipHash on this path, which runs once per payload.
    @exclusivity(unchecked) private var deviceIndex = FlatBuffer(repeating: DeviceIndexEntry(), count: 64)
    @exclusivity(unchecked) private var devices: [DeviceState] = []
    @exclusivity(unchecked) private var series: [SeriesState] = []
    /// Every device's metrics, each device's a linked list from its `firstMetric`.
    @exclusivity(unchecked) private var metrics = FlatBuffer<MetricSlot>()
    @exclusivity(unchecked) private var stages = FlatBuffer<StageState>()
    @exclusivity(unchecked) private var dedups = FlatBuffer<DedupWindow>()
    /// The dedup windows' times: one ring segment per window in one pool, so recording
    /// a time touches no per-series allocation. A window that grows moves to a new
    /// segment and leaves the old one behind; a window's old segments add up to less
    /// than its current one, so the pool is at most twice what the windows use, and
    /// rebuilds (evictions) drop the garbage. The pool itself grows four-fold when full
    /// (`growPool`): every growth copies it into fresh memory, and windows grow often.
    @exclusivity(unchecked) private var dedupPool = FlatBuffer<Int64>()
    @exclusivity(unchecked) private var deadbands = FlatBuffer<DeadbandState>()
    @exclusivity(unchecked) private var buckets = FlatBuffer<BucketState>()
    @exclusivity(unchecked) private var tokenBuckets = FlatBuffer<TokenBucket>()
    @exclusivity(unchecked) private var tick: UInt64 = 0
    @exclusivity(unchecked) private var lastDevice = ""
    /// `lastDevice`'s bits (which `lastDevice` keeps valid).
    @exclusivity(unchecked) private var lastDeviceBits = StringBits()
    @exclusivity(unchecked) private var lastSlot = -1
    /// Where `lastSlot` is in `deviceIndex`, or -1 (after a rebuild moved it).
    @exclusivity(unchecked) private var lastPosition = -1
    /// Which of `lastSlot`'s metrics to compare first (see `stageRange`), or -1.
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
        self.rules = rules
        self.globs = rules.map { try? NameGlob($0.match) }
        var ops: [Op] = []
        var ranges: [Range<Int>] = []
        var rateRules = 0
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
                ops.append(.rate(perMs: rate / 1000, burst: max(1, rate), slot: rateRules))
                rateRules += 1
            }
            if let downsample = rule.downsample, downsample.bucketMs > 0 {
                ops.append(.downsample(bucketMs: downsample.bucketMs, aggregate: downsample.aggregate))
            }
            ranges.append(first..<ops.count)
        }
        self.ops = ops
        var params = FlatBuffer<OpParams>(capacity: ops.count)
        for op in ops { params.append(OpParams(op)) }
        self.params = params
        self.opsOfRule = ranges
        self.rateRules = rateRules
    }

    /// An independent engine in the same state as `other`.
    init(copying other: FilterEngine) {
        rules = other.rules
        maxDevices = other.maxDevices
        maxMetricsPerDevice = other.maxMetricsPerDevice
        maxDedupEntriesPerSeries = other.maxDedupEntriesPerSeries
        ops = other.ops
        params = other.params.copy()
        opsOfRule = other.opsOfRule
        globs = other.globs
        rateRules = other.rateRules
        deviceIndex = other.deviceIndex.copy()
        devices = other.devices
        series = other.series
        metrics = other.metrics.copy()
        stages = other.stages.copy()
        dedups = other.dedups.copy()
        dedupPool = other.dedupPool.copy()
        deadbands = other.deadbands.copy()
        buckets = other.buckets.copy()
        tokenBuckets = other.tokenBuckets.copy()
        tick = other.tick
        lastDevice = other.lastDevice
        lastDeviceBits = other.lastDeviceBits
        lastSlot = other.lastSlot
        lastPosition = other.lastPosition
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
        metrics.deallocate()
        stages.deallocate()
        dedups.deallocate()
        dedupPool.deallocate()
        deadbands.deallocate()
        buckets.deallocate()
        tokenBuckets.deallocate()
    }

    // MARK: - Judging readings

    /// Runs one reading through the stages of its series. For `.deadLetter`,
    /// `deadLetterReason(for:)` says why.
    func judge(_ reading: borrowing Reading) -> FilterResults.Outcome {
        withUnsafePointer(to: reading) { judge(at: $0) }
    }

    /// `judge(_:)` for a reading in memory the caller keeps alive: reading its fields in
    /// place copies (and retains) none of its strings.
    func judge(at pointer: UnsafePointer<Reading>) -> FilterResults.Outcome {
        if ops.isEmpty { return .pass }
        tick &+= 1
        let ts = pointer.pointee.ts
        let value = pointer.pointee.value
        let slot = deviceSlot(for: pointer.pointee.device)
        let (first, end) = stageRange(slot, metric: pointer.pointee.metric)
        var k = first
        while k < end {
            // Dispatch on the kind the stage carries; the operation's numbers load beside.
            let stage = stages[k]
            let p = params[stage.op]
            switch stage.kind {
            case .range:
                if !(value >= p.x && value <= p.y) {
                    deadLetterOp = stage.op
                    return .deadLetter
                }
            case .dedup:
                if dedupSeen(Int(stage.state), ts: ts, window: p.n) {
                    return .dropped(.dedup)
                }
            case .deadband:
                if !deadbands[Int(stage.state)].admit(ts: ts, value: value, abs: p.x, fraction: p.y, heartbeatMs: p.n) {
                    return .dropped(.deadband)
                }
            case .rate:
                if !takeToken(slot: slot, rateSlot: p.slot, ts: ts, perMs: p.x, capacity: p.y) {
                    return .dropped(.rateLimit)
                }
            case .downsample:
                return downsample(ts: ts, value: value, bucket: Int(stage.state), bucketMs: p.n)
            }
            k += 1
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

    /// The device's slot; consecutive readings of one device (a payload's) reuse it
    /// without a lookup. The device's `lastTouched` moves when the device changes, which
    /// is precise enough for choosing whom to evict.
    @inline(__always)
    private func deviceSlot(for device: String) -> Int {
        // Same device as the last reading: compared by its stored bits (see
        // `StringBits`); only a long name needs comparing by its characters.
        if lastSlot >= 0 && (StringBits(device) == lastDeviceBits || (device.utf8.count > 15 && device == lastDevice)) {
            return lastSlot
        }
        let hash = FilterEngine.hash(device)
        var position = findDevice(device, hash: hash)
        let slot: Int
        if position >= 0 {
            slot = Int(deviceIndex[position].slot)
            // The index entry holds what a payload needs of its device (first metric,
            // rate-limit buckets, last seen) so that the usual lookup goes from here
            // straight to the metric, without the device's own record.
            nextGuess = Int(deviceIndex[position].firstMetric)
        } else {
            if devices.count >= maxDevices { evictLeastRecentlySeen() }
            slot = devices.count
            devices.append(DeviceState(name: device))
            insertDevice(slot, hash: hash)
            position = findDevice(device, hash: hash)
            nextGuess = -1
        }
        lastDevice = device
        lastDeviceBits = StringBits(device)
        lastSlot = slot
        lastPosition = position
        deviceIndex[position].lastTouched = tick
        return slot
    }

    static func hash(_ name: String) -> UInt64 {
        func fnv(_ bytes: some Sequence<UInt8>) -> UInt64 {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
            return h
        }
        return name.utf8.withContiguousStorageIfAvailable { fnv($0) } ?? fnv(name.utf8)
    }

    /// The position in `deviceIndex` of the device `name`, or -1.
    private func findDevice(_ name: String, hash: UInt64) -> Int {
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = deviceIndex[i]
            if entry.slot < 0 { return -1 }
            if entry.hash == hash && (entry.bits == StringBits(name) || devices[Int(entry.slot)].name == name) {
                return i
            }
            i = (i + 1) & mask
        }
    }

    /// Adds `slot` to the index, growing it to stay at most half full.
    private func insertDevice(_ slot: Int, hash: UInt64) {
        if (devices.count + 1) * 2 > deviceIndex.count {
            syncDevicesFromIndex()
            reindexDevices(capacity: deviceIndex.count * 2)
            return // reindexing covered `slot` (it is already in `devices`)
        }
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while deviceIndex[i].slot >= 0 { i = (i + 1) & mask }
        deviceIndex[i] = DeviceIndexEntry(slot: slot, device: devices[slot], hash: hash)
    }

    /// Copies the fields the index entries keep current (`lastTouched`, `tokenBase`) back
    /// into `devices`, before the index is rebuilt from them.
    private func syncDevicesFromIndex() {
        for i in deviceIndex.indices where deviceIndex[i].slot >= 0 {
            let entry = deviceIndex[i]
            devices[Int(entry.slot)].lastTouched = entry.lastTouched
            devices[Int(entry.slot)].tokenBase = Int(entry.tokenBase)
        }
    }

    /// Copies device `slot`'s first metric into its index entry.
    private func indexFirstMetric(of slot: Int) {
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: FilterEngine.hash(devices[slot].name)) & mask
        while deviceIndex[i].slot >= 0 {
            if deviceIndex[i].slot == Int32(slot) {
                deviceIndex[i].firstMetric = devices[slot].firstMetric
                return
            }
            i = (i + 1) & mask
        }
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

    /// The stages (`first ..< end` in `stages`) of the series `metric` of device `slot`,
    /// created on first sight.
    @inline(__always)
    private func stageRange(_ slot: Int, metric: String) -> (Int, Int) {
        // Payloads of a device tend to list their metrics in the same order: the one
        // after the last match (or the device's first) is the likely one, compared by
        // its stored bits first (see `StringBits`).
        var m = nextGuess
        if m < 0 || metrics[m].bits != StringBits(metric) {
            if devices[slot].metricCount > 16 {
                m = devices[slot].lookup?[metric].map(Int.init) ?? -1
            } else {
                m = findMetric(slot, metric)
            }
            if m < 0 { m = addSeries(slot, metric: metric) }
        }
        let next = metrics[m].next
        if next >= 0 {
            nextGuess = Int(next)
        } else {
            // The next payload starts over, from the first metric: its copy in the index
            // entry (in cache since `deviceSlot`), not the device's record.
            nextGuess = lastPosition >= 0 ? Int(deviceIndex[lastPosition].firstMetric) : Int(devices[slot].firstMetric)
        }
        let first = Int(metrics[m].firstStage)
        return (first, first + Int(metrics[m].stageCount))
    }

    /// The metric of device `slot` named `name`, or -1: by the stored bits of the names
    /// first, then (a long name, or a copy made apart) by their characters.
    private func findMetric(_ slot: Int, _ name: String) -> Int {
        let bits = StringBits(name)
        var m = Int(devices[slot].firstMetric)
        while m >= 0 {
            if metrics[m].bits == bits { return m }
            m = Int(metrics[m].next)
        }
        m = Int(devices[slot].firstMetric)
        while m >= 0 {
            if series[Int(metrics[m].series)].metric == name { return m }
            m = Int(metrics[m].next)
        }
        return -1
    }

    /// Appends `entry` to `device`'s list of metrics, in `metrics` (the engine's, or the
    /// new ones a rebuild makes).
    private static func link(_ entry: MetricSlot, to device: inout DeviceState, metrics: inout FlatBuffer<MetricSlot>) {
        var entry = entry
        entry.next = -1
        let m = Int32(metrics.count)
        metrics.append(entry)
        if device.lastMetric >= 0 { metrics[Int(device.lastMetric)].next = m } else { device.firstMetric = m }
        device.lastMetric = m
        device.metricCount += 1
    }

    /// The metrics of device `slot`, in the order they were added.
    private func metricsOf(_ slot: Int) -> [Int] {
        var out: [Int] = []
        var m = Int(devices[slot].firstMetric)
        while m >= 0 {
            out.append(m)
            m = Int(metrics[m].next)
        }
        return out
    }

    /// Creates the series `metric` of device `slot` and its stages; returns its metric.
    private func addSeries(_ slot: Int, metric: String) -> Int {
        if devices[slot].metricCount >= maxMetricsPerDevice {
            // A device inventing metric names without end: forget its series (open
            // buckets are emitted first) and rebuild without them. Every device has been
            // touched (`tick` starts at 1), so none goes and `slot` stays.
            for m in metricsOf(slot) { closeAllBuckets(ofSeries: Int(metrics[m].series)) }
            devices[slot].removeAllMetrics()
            rebuild(keepingTouchedAfter: 0)
        }
        let firstStage = stages.count
        let name = devices[slot].name
        let text = NameGlob.seriesText(device: name, metric: metric)
        rules: for rule in rules.indices where globs[rule]?.matches(series: text) == true {
            for op in opsOfRule[rule] {
                var state = -1
                switch ops[op] {
                case .dedup:
                    state = dedups.count
                    dedups.append(DedupWindow(base: dedupPool.count, capacity: DedupWindow.initialCapacity))
                    growPool(by: DedupWindow.initialCapacity)
                case .deadband:
                    state = deadbands.count
                    deadbands.append(DeadbandState())
                case .downsample:
                    var bucket = BucketState(series: series.count, op: op)
                    if !emittedBeforeEviction.isEmpty,
                       let through = emittedBeforeEviction.removeValue(forKey: SeriesKey(device: name, metric: metric)) {
                        bucket.emittedAny = true
                        bucket.emittedThrough = through
                    }
                    state = buckets.count
                    buckets.append(bucket)
                case .range, .rate:
                    break
                }
                stages.append(StageState(kind: params[op].kind, op: op, state: Int32(state)))
                if case .downsample = ops[op] { break rules } // downsample ends the chain
            }
        }
        let stageCount = stages.count - firstStage
        series.append(SeriesState(device: slot, metric: metric, firstStage: firstStage, stageCount: stageCount))
        let entry = MetricSlot(bits: StringBits(series[series.count - 1].metric), series: Int32(series.count - 1), firstStage: Int32(firstStage), stageCount: Int32(stageCount))
        FilterEngine.link(entry, to: &devices[slot], metrics: &metrics)
        let m = metrics.count - 1
        if devices[slot].firstMetric == Int32(m) { indexFirstMetric(of: slot) }
        if devices[slot].lookup != nil {
            devices[slot].lookup?[metric] = Int32(m)
        } else if devices[slot].metricCount > 16 { // (as `stageRange` expects)
            // Past a few metrics a dictionary beats comparing names one by one.
            devices[slot].lookup = Dictionary(uniqueKeysWithValues: metricsOf(slot).map { (series[Int(metrics[$0].series)].metric, Int32($0)) })
        }
        return m
    }

    private func evictLeastRecentlySeen() {
        rebuild(keepingTouchedAfter: tick > UInt64(maxDevices / 2) ? tick - UInt64(maxDevices / 2) : 0)
    }

    /// Rebuilds the state with the devices touched after `keepAfter` — when evicting,
    /// those seen in the last `maxDevices / 2` readings, so at least half go — and only
    /// the series they still refer to. The open buckets of devices that go are emitted
    /// first.
    private func rebuild(keepingTouchedAfter keepAfter: UInt64) {
        syncDevicesFromIndex()
        var newDevices: [DeviceState] = []
        var newSeries: [SeriesState] = []
        var newMetrics = FlatBuffer<MetricSlot>(capacity: metrics.count)
        var newStages = FlatBuffer<StageState>(capacity: stages.count)
        var newDedups = FlatBuffer<DedupWindow>(capacity: dedups.count)
        var newDeadbands = FlatBuffer<DeadbandState>(capacity: deadbands.count)
        var newBuckets = FlatBuffer<BucketState>(capacity: buckets.count)
        var newTokens = FlatBuffer<TokenBucket>(capacity: tokenBuckets.count)
        for slot in devices.indices {
            if devices[slot].lastTouched <= keepAfter {
                for m in metricsOf(slot) {
                    closeAllBuckets(ofSeries: Int(metrics[m].series))
                    rememberEmitted(ofSeries: Int(metrics[m].series))
                }
                continue
            }
            let oldMetrics = metricsOf(slot)
            var device = devices[slot]
            device.removeAllMetrics()
            let newSlot = newDevices.count
            if device.tokenBase >= 0 {
                let base = device.tokenBase
                device.tokenBase = newTokens.count
                newTokens.append(contentsOf: tokenBuckets, base..<(base + rateRules))
            }
            for m in oldMetrics {
                var entry = series[Int(metrics[m].series)]
                let oldFirst = entry.firstStage
                entry.device = newSlot
                entry.firstStage = newStages.count
                for k in oldFirst..<(oldFirst + entry.stageCount) {
                    var stage = stages[k]
                    if stage.state >= 0 {
                        let old = Int(stage.state)
                        switch ops[stage.op] {
                        case .dedup:
                            stage.state = Int32(newDedups.count)
                            newDedups.append(dedups[old])
                        case .deadband:
                            stage.state = Int32(newDeadbands.count)
                            newDeadbands.append(deadbands[old])
                        case .downsample:
                            var bucket = buckets[old]
                            bucket.series = newSeries.count
                            stage.state = Int32(newBuckets.count)
                            newBuckets.append(bucket)
                        case .range, .rate:
                            break
                        }
                    }
                    newStages.append(stage)
                }
                let moved = MetricSlot(bits: StringBits(entry.metric), series: Int32(newSeries.count), firstStage: Int32(entry.firstStage),
                                       stageCount: Int32(entry.stageCount))
                FilterEngine.link(moved, to: &device, metrics: &newMetrics)
                newSeries.append(entry)
            }
            if oldMetrics.count > 16 {
                device.lookup = Dictionary(uniqueKeysWithValues: (0..<oldMetrics.count).map {
                    (newSeries[newSeries.count - oldMetrics.count + $0].metric, Int32(newMetrics.count - oldMetrics.count + $0))
                })
            }
            newDevices.append(device)
        }
        devices = newDevices
        series = newSeries
        metrics.deallocate()
        metrics = newMetrics
        stages.deallocate()
        stages = newStages
        deadbands.deallocate()
        deadbands = newDeadbands
        buckets.deallocate()
        buckets = newBuckets
        tokenBuckets.deallocate()
        tokenBuckets = newTokens
        compactDedupPool(newDedups) // frees the old windows
        reindexDevices(capacity: devices.count * 2 + 2)
        lastSlot = -1
        lastPosition = -1
    }

    private func rememberEmitted(ofSeries s: Int) {
        let first = series[s].firstStage
        for k in first..<(first + series[s].stageCount) {
            guard case .downsample = ops[stages[k].op], buckets[Int(stages[k].state)].emittedAny else { continue }
            if emittedBeforeEviction.count >= maxDevices * 4 { emittedBeforeEviction.removeAll() }
            emittedBeforeEviction[SeriesKey(device: devices[series[s].device].name, metric: series[s].metric)] = buckets[Int(stages[k].state)].emittedThrough
        }
    }

    private func closeAllBuckets(ofSeries s: Int) {
        let first = series[s].firstStage
        for k in first..<(first + series[s].stageCount) {
            if case .downsample = ops[stages[k].op] { closeBucket(Int(stages[k].state)) }
        }
    }

    // MARK: - Stages

    /// Whether `ts` was seen by dedup window `d` within `window` of its newest time;
    /// records it when not. The common case — a new latest time — writes one slot and
    /// reads none. Times that fell out of the window go only when the window is full
    /// (`makeRoom`), so stale ones linger until then; they are older than the window, so
    /// no time that is judged can match them.
    @inline(__always)
    private func dedupSeen(_ d: Int, ts: Int64, window: Int64) -> Bool {
        // The common case inline: a new latest time with room for it.
        let w = dedups[d]
        if ts > w.newest && w.count < w.capacity {
            dedupPool[w.slot(w.count)] = ts
            dedups[d].newest = ts
            dedups[d].count = w.count + 1
            return false
        }
        return dedupSeenSlowly(d, ts: ts, window: window)
    }

    private func dedupSeenSlowly(_ d: Int, ts: Int64, window: Int64) -> Bool {
        var w = dedups[d]
        if ts > w.newest {
            w.newest = ts
            if w.count == w.capacity {
                dedups[d] = w
                makeRoom(d, window: window)
                w = dedups[d]
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
                lo -= makeRoom(d, window: window)
                if lo < 0 { return false } // older than everything kept at the cap
                w = dedups[d]
            }
            var j = w.count
            while j > lo {
                dedupPool[w.slot(j)] = dedupPool[w.slot(j - 1)]
                j -= 1
            }
            dedupPool[w.slot(lo)] = ts
            w.count += 1
        }
        dedups[d] = w
        return false
    }

    /// Frees at least one slot in full window `d`: drops the times older than the
    /// window; when that leaves it more than 3/4 full, grows it (to a new segment at the
    /// pool's end) up to `maxDedupEntriesPerSeries`, and past that forgets the oldest time
    /// if it is still full. Returns how many times it dropped from the front.
    ///
    /// Dropping stale times only here, in one sweep, rather than every few records keeps
    /// the cold front of the ring out of the per-reading path.
    @discardableResult
    private func makeRoom(_ d: Int, window: Int64) -> Int {
        var w = dedups[d]
        let cutoff = w.newest &- window
        var dropped = 0
        while w.count > 0 && dedupPool[w.slot(0)] < cutoff {
            w.start = (w.start + 1) & (w.capacity - 1)
            w.count -= 1
            dropped += 1
        }
        if w.count * 4 <= w.capacity * 3 {
            dedups[d] = w
            return dropped
        }
        if w.capacity >= maxDedupEntriesPerSeries {
            if w.count == w.capacity {
                w.start = (w.start + 1) & (w.capacity - 1)
                w.count -= 1
                dropped += 1
            }
            dedups[d] = w
            return dropped
        }
        let newCapacity = w.capacity * 2
        let newBase = dedupPool.count
        growPool(by: newCapacity)
        for j in 0..<w.count { dedupPool[newBase + j] = dedupPool[w.slot(j)] }
        w.base = newBase
        w.capacity = newCapacity
        w.start = 0
        dedups[d] = w
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

    /// Makes `windows` the dedup windows, laid out afresh in a new pool (dropping the
    /// garbage); frees the old windows and pool.
    private func compactDedupPool(_ windows: FlatBuffer<DedupWindow>) {
        var pool = FlatBuffer<Int64>(capacity: dedupPool.count)
        for d in windows.indices {
            var w = windows[d]
            let base = pool.count
            pool.append(repeating: 0, count: w.capacity)
            for j in 0..<w.count { pool[base + j] = dedupPool[w.slot(j)] }
            w.base = base
            w.start = 0
            windows[d] = w
        }
        dedups.deallocate()
        dedups = windows
        dedupPool.deallocate()
        dedupPool = pool
    }

    @inline(__always)
    private func takeToken(slot: Int, rateSlot: Int, ts: Int64, perMs: Double, capacity: Double) -> Bool {
        if lastPosition < 0 { lastPosition = findDevice(devices[slot].name, hash: FilterEngine.hash(devices[slot].name)) }
        var base = Int(deviceIndex[lastPosition].tokenBase)
        if base < 0 {
            base = tokenBuckets.count
            tokenBuckets.append(repeating: TokenBucket(), count: rateRules)
            deviceIndex[lastPosition].tokenBase = Int32(base)
        }
        return tokenBuckets[base + rateSlot].take(ts: ts, perMs: perMs, capacity: capacity)
    }

    private func bucketSpec(_ b: Int) -> (bucketMs: Int64, aggregate: DownsampleSpec.Aggregate) {
        if case .downsample(let bucketMs, let aggregate) = ops[buckets[b].op] { return (bucketMs, aggregate) }
        return (1, .mean) // not reached: buckets belong to downsample stages only
    }

    private func bucketEnd(_ b: Int) -> Int64 {
        let (end, overflow) = buckets[b].start.addingReportingOverflow(bucketSpec(b).bucketMs)
        return overflow ? .max : end
    }

    private func downsample(ts: Int64, value: Double, bucket b: Int, bucketMs: Int64) -> FilterResults.Outcome {
        // A time so close to the start of Int64 that its bucket start does not exist (only
        // a broken clock writes it; the clock policy normally rejects it first).
        guard ts >= Int64.min + bucketMs else { return .dropped(.downsample) }
        // The usual case without a division: a time inside the open bucket (which starts
        // after anything emitted, so the checks below would let it in). Updated in place:
        // a bucket is two cache lines, and copying it out and back costs.
        let open = buckets.base + b
        let (offset, overflow) = ts.subtractingReportingOverflow(open.pointee.start)
        if open.pointee.open && !overflow && offset >= 0 && offset < bucketMs {
            open.pointee.aggregate.add(ts: ts, value: value)
            open.pointee.scaledSum += value * 0x1p-64
            return .held
        }
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
    /// The tick of the device's last payload. Current in the device's index entry (as is
    /// `tokenBase`); `syncDevicesFromIndex` copies both here before a rebuild.
    var lastTouched: UInt64 = 0
    /// The device's metrics: a list through `FilterEngine.metrics`, in the order added.
    var firstMetric: Int32 = -1
    var lastMetric: Int32 = -1
    var metricCount = 0
    /// Built once a device has many metrics (name → its index in `FilterEngine.metrics`);
    /// comparing names one by one is faster below that.
    var lookup: [String: Int32]? = nil
    /// Where this device's rate-limit buckets (one per rule) start, or -1.
    var tokenBase = -1

    init(name: String) { self.name = name }

    mutating func removeAllMetrics() {
        firstMetric = -1
        lastMetric = -1
        metricCount = 0
        lookup = nil
    }
}

/// One metric of a device: its name's bits (the name itself is its series'), its series
/// and where the series' stages are, and the device's next metric (or -1). 32 bytes.
private struct MetricSlot: Sendable {
    /// The name as stored (`FilterEngine.series` keeps it alive); see `StringBits`.
    var bits: StringBits
    var series: Int32
    var firstStage: Int32
    var stageCount: Int32
    var next: Int32 = -1

    init(bits: StringBits, series: Int32, firstStage: Int32, stageCount: Int32) {
        self.bits = bits
        self.series = series
        self.firstStage = firstStage
        self.stageCount = stageCount
    }
}

private struct DeviceIndexEntry: Sendable {
    var hash: UInt64 = 0
    var slot: Int32 = -1
    /// `devices[slot].firstMetric`, kept here too (see `deviceSlot`).
    var firstMetric: Int32 = -1
    /// The device's `lastTouched` and `tokenBase`, current here (see `DeviceState`).
    var lastTouched: UInt64 = 0
    var tokenBase: Int32 = -1
    /// The device's name as stored (`devices[slot].name` keeps it alive).
    var bits = StringBits()

    init() {}

    init(slot: Int, device: DeviceState, hash: UInt64) {
        self.hash = hash
        self.slot = Int32(slot)
        firstMetric = device.firstMetric
        lastTouched = device.lastTouched
        tokenBase = Int32(device.tokenBase)
        bits = StringBits(device.name)
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
    var firstStage: Int
    var stageCount: Int
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

/// One operation of one series: which operation (and its kind, for dispatch without
/// loading the operation first), and where its state is (an index into `dedups`,
/// `deadbands` or `buckets` by the kind; -1 for stateless ones). Eight bytes, so a
/// series' stages share a cache line.
private struct StageState: Sendable {
    /// `op << 3 | kind`.
    private var packed: UInt32
    var state: Int32

    init(kind: OpParams.Kind, op: Int, state: Int32) {
        packed = UInt32(op) << 3 | UInt32(kind.rawValue)
        self.state = state
    }

    var op: Int { Int(packed >> 3) }
    var kind: OpParams.Kind { OpParams.Kind(rawValue: UInt8(packed & 7)) ?? .range }
}

/// One series' dedup window: a sorted ring of times in `FilterEngine.dedupPool`, oldest
/// at `start`, `capacity` a power of two.
private struct DedupWindow: Sendable {
    static let initialCapacity = 8
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

private struct TokenBucket: Sendable {
    var started = false
    var tokens = 0.0
    var lastTs: Int64 = 0

    mutating func take(ts: Int64, perMs: Double, capacity: Double) -> Bool {
        if !started {
            started = true
            tokens = capacity
            lastTs = ts
        } else if ts > lastTs {
            tokens = Swift.min(capacity, tokens + Double(ts &- lastTs) * perMs)
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
