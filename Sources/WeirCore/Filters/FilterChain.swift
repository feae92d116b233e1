/// The edge's filters for one ingest task: the configured rules plus the per-series and
/// per-device state they need. Stateful and not shared: each ingest task owns one.
///
/// Every rule whose `match` fits a reading's `device/metric` applies, in config order, each
/// with its stages in the fixed order `range`, `dedup`, `deadband`, `rate_limit`,
/// `downsample`; the first stage that removes the reading decides the verdict. A
/// downsample stage ends the chain for its series: the aggregates it emits do not go
/// through later rules.
///
/// **Time.** Every stage works on event time (`Reading.ts`), never the wall clock, so a
/// backlog a device bursts after an outage is judged as it was measured: the dedup window
/// and heartbeat are spans of event time, the rate limit counts readings per second of
/// event time, downsample buckets are epoch-aligned event-time buckets. Readings older
/// than a series' newest one are handled without disturbing it (no heartbeat forced, no
/// tokens refilled). The one exception is `flushDue(now:)`, which closes buckets whose end
/// the caller's clock has passed, so a series that stops still emits its last bucket.
///
/// **Memory** is bounded: state is kept per series (and per device for rate limits), the
/// dedup window of a series holds at most `maxDedupEntriesPerSeries` times, and past
/// `maxDevices` devices the least recently seen half is forgotten. Nothing held is lost:
/// their open buckets are emitted first, and their last emitted bucket is remembered so
/// a returning device's late reading cannot emit a bucket twice. What a forgotten device
/// does lose is harmless: a repeat may pass dedup (the cloud deduplicates it), one reading
/// may pass its deadband, its rate limit starts with a full burst.
///
/// ```swift
/// var chain = FilterChain(rules: [FilterRule(match: "*/temp", deadband: DeadbandSpec(abs: 0.5))])
/// switch chain.apply(reading) {
/// case .pass(let r): keep(r)
/// case .held: break
/// case .dropped(let reason): count(reason)
/// case .deadLetter(let reason): deadLetter(reason)
/// }
/// for r in chain.flushDue(now: nowMs) { keep(r) }
/// ```
public struct FilterChain: Sendable {
    /// The rules, in config order.
    public let rules: [FilterRule]
    /// Most devices with state; past it the least recently seen half is forgotten.
    public var maxDevices = 100_000
    /// Most metrics with state per device; past it that device's state starts afresh.
    public var maxMetricsPerDevice = 4_096
    /// Most identities a series' dedup window remembers, rounded up to a power of two (the
    /// oldest go first).
    public var maxDedupEntriesPerSeries = 4_096

    // Each rule is compiled to a list of single-purpose operations; a series gets one
    // stage per operation of every rule that matches it. The state lives in flat arrays
    // addressed by index, so the hot path touches no reference counts: devices → their
    // series → the series' stages. Eviction rebuilds the arrays.
    private let ops: [Op]
    private let opsOfRule: [Range<Int>]
    private let globs: [NameGlob?]
    private let rateRules: Int
    /// Open-addressing index of `devices` by name (FNV-1a of the bytes, linear probing):
    /// cheaper than a Dictionary's SipHash on this path, which runs once per payload.
    private var deviceIndex: [DeviceIndexEntry] = Array(repeating: DeviceIndexEntry(), count: 64)
    private var devices: [DeviceState] = []
    private var series: [SeriesState] = []
    private var stages: [StageState] = []
    private var dedups: [DedupWindow] = []
    /// The dedup windows' times: one ring segment per window in one flat array, so
    /// recording a time touches no per-series allocation. A window that grows moves to a
    /// new segment and leaves the old one behind; a window's old segments add up to less
    /// than its current one, so the pool is at most twice what the windows use, and
    /// rebuilds (evictions) drop the garbage.
    private var dedupPool: [Int64] = []
    private var deadbands: [DeadbandState] = []
    private var buckets: [BucketState] = []
    private var tokenBuckets: [TokenBucket] = []
    private var tick: UInt64 = 0
    private var lastDevice = ""
    private var lastSlot = -1
    /// Completed buckets not yet handed out.
    private var ready: [Reading] = []
    /// The last emitted bucket of downsampled series whose device was evicted, so a late
    /// reading of a returning device cannot emit a bucket a second time. Bounded: cleared
    /// when it reaches `4 * maxDevices` entries.
    private var emittedBeforeEviction: [SeriesKey: Int64] = [:]
    /// How many buckets are open, and the earliest end among them.
    private var openBuckets = 0
    private var nextBucketEnd = Int64.max

    /// A chain over `rules` (validate them first with `FilterRule.validate()`; a rule that
    /// does not parse matches nothing).
    public init(rules: [FilterRule]) {
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
        self.opsOfRule = ranges
        self.rateRules = rateRules
    }

    /// Runs one reading through the rules that match it.
    public mutating func apply(_ reading: Reading) -> FilterVerdict {
        if ops.isEmpty { return .pass(reading) }
        tick &+= 1
        let slot = deviceSlot(for: reading.device)
        let s = seriesIndex(slot, metric: reading.metric)
        var k = series[s].firstStage
        let end = k + series[s].stageCount
        while k < end {
            let stage = stages[k]
            switch ops[Int(stage.op)] {
            case .range(let min, let max, let rule):
                if !(reading.value >= min && reading.value <= max) {
                    return .deadLetter(reason: rangeReason(reading, min: min, max: max, rule: rule))
                }
            case .dedup(let windowMs):
                if dedupSeen(Int(stage.state), ts: reading.ts, window: windowMs) {
                    return .dropped(reason: .dedup)
                }
            case .deadband(let abs, let fraction, let heartbeatMs):
                if !deadbands[Int(stage.state)].admit(reading, abs: abs, fraction: fraction, heartbeatMs: heartbeatMs) {
                    return .dropped(reason: .deadband)
                }
            case .rate(let perMs, let burst, let rateSlot):
                if !takeToken(slot: slot, rateSlot: rateSlot, ts: reading.ts, perMs: perMs, capacity: burst) {
                    return .dropped(reason: .rateLimit)
                }
            case .downsample(let bucketMs, _):
                return downsample(reading, bucket: Int(stage.state), bucketMs: bucketMs)
            }
            k += 1
        }
        return .pass(reading)
    }

    /// The aggregates of buckets that are complete: those a later bucket of their series
    /// has started, and those whose end `now` (epoch ms, the caller's clock) has reached.
    public mutating func flushDue(now: Int64) -> [Reading] {
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

    /// Every held bucket's aggregate, complete or not (at shutdown).
    public mutating func flushAll() -> [Reading] {
        if openBuckets > 0 {
            for b in buckets.indices where buckets[b].open { closeBucket(b) }
            nextBucketEnd = .max
        }
        return takeReady()
    }

    // MARK: - State

    private mutating func takeReady() -> [Reading] {
        if ready.isEmpty { return [] }
        let out = ready
        ready.removeAll()
        return out
    }

    /// The device's slot; consecutive readings of one device (a payload's) reuse it
    /// without a lookup. The slot's `lastTouched` moves when the device changes, which is
    /// precise enough for choosing whom to evict.
    private mutating func deviceSlot(for device: String) -> Int {
        if lastSlot >= 0 && device == lastDevice { return lastSlot }
        let hash = FilterChain.hash(device)
        var slot = findDevice(device, hash: hash)
        if slot < 0 {
            if devices.count >= maxDevices { evictLeastRecentlySeen() }
            slot = devices.count
            devices.append(DeviceState(name: device))
            insertDevice(slot, hash: hash)
        }
        lastDevice = device
        lastSlot = slot
        devices[slot].lastTouched = tick
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

    private func findDevice(_ name: String, hash: UInt64) -> Int {
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = deviceIndex[i]
            if entry.slot < 0 { return -1 }
            if entry.hash == hash && devices[Int(entry.slot)].name == name { return Int(entry.slot) }
            i = (i + 1) & mask
        }
    }

    /// Adds `slot` to the index, growing it to stay at most half full.
    private mutating func insertDevice(_ slot: Int, hash: UInt64) {
        if (devices.count + 1) * 2 > deviceIndex.count {
            reindexDevices(capacity: deviceIndex.count * 2)
            return // reindexing covered `slot` (it is already in `devices`)
        }
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while deviceIndex[i].slot >= 0 { i = (i + 1) & mask }
        deviceIndex[i] = DeviceIndexEntry(hash: hash, slot: Int32(slot))
    }

    private mutating func reindexDevices(capacity: Int) {
        var size = 64
        while size < capacity { size *= 2 }
        deviceIndex = Array(repeating: DeviceIndexEntry(), count: size)
        let mask = size - 1
        for slot in devices.indices {
            let hash = FilterChain.hash(devices[slot].name)
            var i = Int(truncatingIfNeeded: hash) & mask
            while deviceIndex[i].slot >= 0 { i = (i + 1) & mask }
            deviceIndex[i] = DeviceIndexEntry(hash: hash, slot: Int32(slot))
        }
    }

    private mutating func seriesIndex(_ slot: Int, metric: String) -> Int {
        if let lookup = devices[slot].lookup {
            if let found = lookup[metric] { return found }
        } else {
            // Payloads of a device tend to list their metrics in the same order: try the
            // one after the last match first, then the rest.
            let n = devices[slot].metrics.count
            var i = devices[slot].nextGuess
            var tried = 0
            while tried < n {
                if i >= n { i = 0 }
                if devices[slot].metrics[i].name == metric {
                    devices[slot].nextGuess = i + 1
                    return devices[slot].metrics[i].series
                }
                i += 1
                tried += 1
            }
        }
        if devices[slot].metrics.count >= maxMetricsPerDevice {
            // A device inventing metric names without end: forget its series (open
            // buckets are emitted first) and rebuild without them.
            for entry in devices[slot].metrics { closeAllBuckets(ofSeries: entry.series) }
            devices[slot].metrics.removeAll()
            devices[slot].lookup = nil
            rebuild(keepingTouchedAfter: 0)
        }
        let firstStage = stages.count
        let name = devices[slot].name
        rules: for rule in rules.indices where globs[rule]?.matches(device: name, metric: metric) == true {
            for op in opsOfRule[rule] {
                var state = -1
                switch ops[op] {
                case .dedup:
                    state = dedups.count
                    dedups.append(DedupWindow(base: dedupPool.count, capacity: DedupWindow.initialCapacity))
                    dedupPool.append(contentsOf: repeatElement(0, count: DedupWindow.initialCapacity))
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
                stages.append(StageState(op: Int32(op), state: Int32(state)))
                if case .downsample = ops[op] { break rules } // downsample ends the chain
            }
        }
        series.append(SeriesState(device: slot, metric: metric, firstStage: firstStage, stageCount: stages.count - firstStage))
        devices[slot].add(metric: metric, series: series.count - 1)
        return series.count - 1
    }

    private mutating func evictLeastRecentlySeen() {
        rebuild(keepingTouchedAfter: tick > UInt64(maxDevices / 2) ? tick - UInt64(maxDevices / 2) : 0)
    }

    /// Rebuilds the state arrays with the devices touched after `keepAfter` — when
    /// evicting, those seen in the last `maxDevices / 2` readings, so at least half go —
    /// and only the series they still refer to. The open buckets of devices that go are
    /// emitted first.
    private mutating func rebuild(keepingTouchedAfter keepAfter: UInt64) {
        var newDevices: [DeviceState] = []
        var newSeries: [SeriesState] = []
        var newStages: [StageState] = []
        var newDedups: [DedupWindow] = []
        var newDeadbands: [DeadbandState] = []
        var newBuckets: [BucketState] = []
        var newTokens: [TokenBucket] = []
        for slot in devices.indices {
            if devices[slot].lastTouched <= keepAfter {
                for entry in devices[slot].metrics {
                    closeAllBuckets(ofSeries: entry.series)
                    rememberEmitted(ofSeries: entry.series)
                }
                continue
            }
            var device = devices[slot]
            let newSlot = newDevices.count
            if device.tokenBase >= 0 {
                let base = device.tokenBase
                device.tokenBase = newTokens.count
                newTokens.append(contentsOf: tokenBuckets[base..<(base + rateRules)])
            }
            for (i, metric) in device.metrics.enumerated() {
                var entry = series[metric.series]
                let oldFirst = entry.firstStage
                entry.device = newSlot
                entry.firstStage = newStages.count
                for k in oldFirst..<(oldFirst + entry.stageCount) {
                    var stage = stages[k]
                    if stage.state >= 0 {
                        let old = Int(stage.state)
                        switch ops[Int(stage.op)] {
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
                device.metrics[i].series = newSeries.count
                newSeries.append(entry)
            }
            if device.lookup != nil {
                device.lookup = Dictionary(uniqueKeysWithValues: device.metrics.map { ($0.name, $0.series) })
            }
            newDevices.append(device)
        }
        devices = newDevices
        series = newSeries
        stages = newStages
        dedups = newDedups
        compactDedupPool()
        deadbands = newDeadbands
        buckets = newBuckets
        tokenBuckets = newTokens
        reindexDevices(capacity: devices.count * 2 + 2)
        lastSlot = -1
    }

    private mutating func rememberEmitted(ofSeries s: Int) {
        let first = series[s].firstStage
        for k in first..<(first + series[s].stageCount) {
            guard case .downsample = ops[Int(stages[k].op)], buckets[Int(stages[k].state)].emittedAny else { continue }
            if emittedBeforeEviction.count >= maxDevices * 4 { emittedBeforeEviction.removeAll() }
            emittedBeforeEviction[SeriesKey(device: devices[series[s].device].name, metric: series[s].metric)] = buckets[Int(stages[k].state)].emittedThrough
        }
    }

    private mutating func closeAllBuckets(ofSeries s: Int) {
        let first = series[s].firstStage
        for k in first..<(first + series[s].stageCount) {
            if case .downsample = ops[Int(stages[k].op)] { closeBucket(Int(stages[k].state)) }
        }
    }

    // MARK: - Stages

    /// Whether `ts` was seen by dedup window `d` within `window` of its newest time;
    /// records it when not. The common case — a new latest time — writes one slot and
    /// reads none; times that fell out of the window are dropped every 32 records, so a
    /// few stale ones may linger (older than the window, no judged time can match them).
    private mutating func dedupSeen(_ d: Int, ts: Int64, window: Int64) -> Bool {
        if ts > dedups[d].newest {
            dedups[d].newest = ts
            if dedups[d].count == dedups[d].capacity { makeRoom(d) }
            let w = dedups[d]
            dedupPool[w.base + ((w.start + w.count) & (w.capacity - 1))] = ts
            dedups[d].count += 1
        } else {
            // Older than the window: it cannot be judged, let it through unrecorded.
            if ts < dedups[d].newest &- window { return false }
            var w = dedups[d]
            var lo = 0, hi = w.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if dedupPool[w.base + ((w.start + mid) & (w.capacity - 1))] < ts { lo = mid + 1 } else { hi = mid }
            }
            if lo < w.count && dedupPool[w.base + ((w.start + lo) & (w.capacity - 1))] == ts { return true }
            if w.count == w.capacity {
                if makeRoom(d) { lo -= 1 }
                if lo < 0 { return false } // older than everything kept at the cap
                w = dedups[d]
            }
            var j = w.count
            while j > lo {
                dedupPool[w.base + ((w.start + j) & (w.capacity - 1))] = dedupPool[w.base + ((w.start + j - 1) & (w.capacity - 1))]
                j -= 1
            }
            dedupPool[w.base + ((w.start + lo) & (w.capacity - 1))] = ts
            dedups[d].count += 1
        }
        dedups[d].sinceEviction += 1
        if dedups[d].sinceEviction >= 32 {
            dedups[d].sinceEviction = 0
            var w = dedups[d]
            let cutoff = w.newest &- window
            while w.count > 0 && dedupPool[w.base + (w.start & (w.capacity - 1))] < cutoff {
                w.start = (w.start + 1) & (w.capacity - 1)
                w.count -= 1
            }
            dedups[d] = w
        }
        return false
    }

    /// Frees one slot in full window `d`: grows it (to a new segment at the pool's end)
    /// up to `maxDedupEntriesPerSeries`, past that forgets the oldest time. Returns
    /// whether it forgot one.
    @discardableResult
    private mutating func makeRoom(_ d: Int) -> Bool {
        var w = dedups[d]
        if w.capacity >= maxDedupEntriesPerSeries {
            w.start = (w.start + 1) & (w.capacity - 1)
            w.count -= 1
            dedups[d] = w
            return true
        }
        let newCapacity = w.capacity * 2
        let newBase = dedupPool.count
        for j in 0..<w.count {
            let t = dedupPool[w.base + ((w.start + j) & (w.capacity - 1))]
            dedupPool.append(t)
        }
        dedupPool.append(contentsOf: repeatElement(0, count: newCapacity - w.count))
        w.base = newBase
        w.capacity = newCapacity
        w.start = 0
        dedups[d] = w
        return false
    }

    /// Lays every window out afresh in a new pool, dropping the garbage.
    private mutating func compactDedupPool() {
        var pool: [Int64] = []
        for d in dedups.indices {
            let w = dedups[d]
            let base = pool.count
            for j in 0..<w.count { pool.append(dedupPool[w.base + ((w.start + j) & (w.capacity - 1))]) }
            pool.append(contentsOf: repeatElement(0, count: w.capacity - w.count))
            dedups[d].base = base
            dedups[d].start = 0
        }
        dedupPool = pool
    }

    private func rangeReason(_ reading: Reading, min: Double, max: Double, rule: Int) -> String {
        let bound = reading.value < min ? "below the minimum \(min)" : "above the maximum \(max)"
        return "\(reading.device)/\(reading.metric): value \(reading.value) at \(reading.ts) is \(bound) (filter '\(rules[rule].match)' range)"
    }

    private mutating func takeToken(slot: Int, rateSlot: Int, ts: Int64, perMs: Double, capacity: Double) -> Bool {
        var base = devices[slot].tokenBase
        if base < 0 {
            base = tokenBuckets.count
            tokenBuckets.append(contentsOf: repeatElement(TokenBucket(), count: rateRules))
            devices[slot].tokenBase = base
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

    private mutating func downsample(_ reading: Reading, bucket b: Int, bucketMs: Int64) -> FilterVerdict {
        // A time so close to the start of Int64 that its bucket start does not exist (only
        // a broken clock writes it; the clock policy normally rejects it first).
        guard reading.ts >= Int64.min + bucketMs else { return .dropped(reason: .downsample) }
        let start = WindowMath.start(of: reading.ts, size: bucketMs)
        if buckets[b].emittedAny && start <= buckets[b].emittedThrough { return .dropped(reason: .downsample) }
        if buckets[b].open {
            if start == buckets[b].start {
                buckets[b].aggregate.add(ts: reading.ts, value: reading.value)
                buckets[b].scaledSum += reading.value * 0x1p-64
                return .held
            }
            if start < buckets[b].start { return .dropped(reason: .downsample) }
            closeBucket(b)
        }
        buckets[b].start = start
        buckets[b].aggregate = WindowAggregate(ts: reading.ts, value: reading.value)
        buckets[b].scaledSum = reading.value * 0x1p-64
        buckets[b].open = true
        openBuckets += 1
        let end = bucketEnd(b)
        if end < nextBucketEnd { nextBucketEnd = end }
        return .held
    }

    private mutating func closeBucket(_ b: Int) {
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

// MARK: - Internal state types

/// One single-purpose operation of a rule, reduced to plain numbers for the hot path.
private enum Op: Sendable {
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
    var lastTouched: UInt64 = 0
    /// The device's metrics and their series indices.
    var metrics: [MetricEntry] = []
    /// Built once a device has many metrics; a linear scan is faster below that.
    var lookup: [String: Int]? = nil
    /// Where this device's rate-limit buckets (one per rule) start, or -1.
    var tokenBase = -1
    /// The metric most likely to come next (see `seriesIndex`).
    var nextGuess = 0

    init(name: String) { self.name = name }

    mutating func add(metric: String, series: Int) {
        metrics.append(MetricEntry(name: metric, series: series))
        if lookup != nil {
            lookup?[metric] = series
        } else if metrics.count > 16 {
            lookup = Dictionary(uniqueKeysWithValues: metrics.map { ($0.name, $0.series) })
        }
    }
}

private struct MetricEntry: Sendable {
    var name: String
    var series: Int
}

private struct DeviceIndexEntry: Sendable {
    var hash: UInt64 = 0
    var slot: Int32 = -1
}

private struct SeriesState: Sendable {
    var device: Int
    var metric: String
    var firstStage: Int
    var stageCount: Int
}

/// One operation of one series: which operation, and where its state is (an index into
/// `dedups`, `deadbands` or `buckets` by the operation's kind; -1 for stateless ones).
/// Eight bytes, so a series' stages share a cache line.
private struct StageState: Sendable {
    var op: Int32
    var state: Int32
}

/// One series' dedup window: a sorted ring of times in `FilterChain.dedupPool`, oldest
/// at `start`, `capacity` a power of two.
private struct DedupWindow: Sendable {
    static let initialCapacity = 8
    var base: Int
    var capacity: Int
    var start = 0
    var count = 0
    var newest = Int64.min
    var sinceEviction = 0

    init(base: Int, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }
}

private struct DeadbandState: Sendable {
    var has = false
    var value = 0.0
    var ts: Int64 = 0

    mutating func admit(_ reading: Reading, abs: Double, fraction: Double, heartbeatMs: Int64) -> Bool {
        var pass = !has
        if !pass {
            let change = Swift.abs(reading.value - value)
            if fraction < 0 {
                pass = change > abs
            } else {
                pass = value == 0 ? change > 0 : change > fraction * Swift.abs(value)
            }
        }
        if !pass && heartbeatMs > 0 && reading.ts &- ts >= heartbeatMs { pass = true }
        if pass {
            value = reading.value
            ts = has ? Swift.max(ts, reading.ts) : reading.ts
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
