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
/// `maxDevices` devices the least recently seen half is forgotten (their open buckets
/// are emitted first, nothing held is lost).
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
    /// Most identities a series' dedup window remembers (the oldest go first).
    public var maxDedupEntriesPerSeries = 4_096

    private let compiled: [CompiledRule]
    private var deviceSlots: [String: Int] = [:]
    private var devices: [DeviceState] = []
    private var freeSlots: [Int] = []
    private var tick: UInt64 = 0
    private var lastDevice = ""
    private var lastSlot = -1
    /// Completed buckets not yet handed out.
    private var ready: [Reading] = []
    /// How many series hold an open bucket (lets `flushDue` skip its scan).
    private var openBuckets = 0

    /// A chain over `rules` (validate them first with `FilterRule.validate()`; a rule that
    /// does not parse matches nothing).
    public init(rules: [FilterRule]) {
        self.rules = rules
        self.compiled = rules.map(CompiledRule.init)
    }

    /// Runs one reading through the rules that match it.
    public mutating func apply(_ reading: Reading) -> FilterVerdict {
        if compiled.isEmpty { return .pass(reading) }
        tick &+= 1
        let slot = deviceSlot(for: reading.device)
        devices[slot].lastTouched = tick
        let s = seriesIndex(slot, metric: reading.metric)
        let stageCount = devices[slot].series[s].stages.count
        var k = 0
        while k < stageCount {
            let ruleIndex = devices[slot].series[s].stages[k].rule
            let rule = compiled[ruleIndex]
            if rule.hasRange && !(reading.value >= rule.min && reading.value <= rule.max) {
                return .deadLetter(reason: rangeReason(reading, rule: ruleIndex))
            }
            if rule.dedupWindowMs > 0 {
                if devices[slot].series[s].stages[k].dedup.seen(reading.ts, window: rule.dedupWindowMs, cap: maxDedupEntriesPerSeries) {
                    return .dropped(reason: .dedup)
                }
            }
            if rule.hasDeadband {
                if !devices[slot].series[s].stages[k].deadband.admit(reading, rule: rule) {
                    return .dropped(reason: .deadband)
                }
            }
            if rule.ratePerMs > 0 {
                if !takeToken(slot: slot, rule: ruleIndex, ts: reading.ts, compiled: rule) {
                    return .dropped(reason: .rateLimit)
                }
            }
            if rule.bucketMs > 0 {
                return downsample(reading, slot: slot, series: s, stage: k, rule: rule)
            }
            k += 1
        }
        return .pass(reading)
    }

    /// The aggregates of buckets that are complete: those a later bucket of their series
    /// has started, and those whose end `now` (epoch ms, the caller's clock) has reached.
    public mutating func flushDue(now: Int64) -> [Reading] {
        if openBuckets > 0 {
            for slot in devices.indices where devices[slot].live {
                for s in devices[slot].series.indices {
                    for k in devices[slot].series[s].stages.indices {
                        let bucket = devices[slot].series[s].stages[k].bucket
                        guard bucket.open else { continue }
                        let rule = compiled[devices[slot].series[s].stages[k].rule]
                        let (end, overflow) = bucket.start.addingReportingOverflow(rule.bucketMs)
                        if overflow || now >= end {
                            closeBucket(slot: slot, series: s, stage: k, rule: rule)
                        }
                    }
                }
            }
        }
        return takeReady()
    }

    /// Every held bucket's aggregate, complete or not (at shutdown).
    public mutating func flushAll() -> [Reading] {
        if openBuckets > 0 {
            for slot in devices.indices where devices[slot].live {
                flushDevice(slot)
            }
        }
        return takeReady()
    }

    // MARK: - State

    private mutating func takeReady() -> [Reading] {
        let out = ready
        ready.removeAll()
        return out
    }

    private mutating func deviceSlot(for device: String) -> Int {
        if lastSlot >= 0 && device == lastDevice { return lastSlot }
        let slot: Int
        if let existing = deviceSlots[device] {
            slot = existing
        } else {
            if deviceSlots.count >= maxDevices { evictLeastRecentlySeen() }
            let state = DeviceState(name: device)
            if let free = freeSlots.popLast() {
                devices[free] = state
                slot = free
            } else {
                slot = devices.count
                devices.append(state)
            }
            deviceSlots[device] = slot
        }
        lastDevice = device
        lastSlot = slot
        return slot
    }

    private mutating func seriesIndex(_ slot: Int, metric: String) -> Int {
        if let i = devices[slot].index(of: metric) { return i }
        if devices[slot].series.count >= maxMetricsPerDevice {
            flushDevice(slot)
            devices[slot] = DeviceState(name: devices[slot].name)
            devices[slot].lastTouched = tick
        }
        var stages: [StageState] = []
        for (i, rule) in compiled.enumerated() where rule.glob?.matches(device: devices[slot].name, metric: metric) == true {
            stages.append(StageState(rule: i))
            if rule.bucketMs > 0 { break } // downsample ends the chain
        }
        return devices[slot].add(metric: metric, stages: stages)
    }

    /// Forgets the devices not seen in the last `maxDevices / 2` readings: at least half
    /// of them, since fewer than that many devices can have been seen in that span.
    private mutating func evictLeastRecentlySeen() {
        let keepAfter = tick > UInt64(maxDevices / 2) ? tick - UInt64(maxDevices / 2) : 0
        for slot in devices.indices where devices[slot].live && devices[slot].lastTouched <= keepAfter {
            flushDevice(slot)
            deviceSlots[devices[slot].name] = nil
            devices[slot] = DeviceState(name: "")
            devices[slot].live = false
            freeSlots.append(slot)
        }
        lastSlot = -1
    }

    private mutating func flushDevice(_ slot: Int) {
        for s in devices[slot].series.indices {
            for k in devices[slot].series[s].stages.indices where devices[slot].series[s].stages[k].bucket.open {
                closeBucket(slot: slot, series: s, stage: k, rule: compiled[devices[slot].series[s].stages[k].rule])
            }
        }
    }

    // MARK: - Stages

    private func rangeReason(_ reading: Reading, rule: Int) -> String {
        let c = compiled[rule]
        let bound = reading.value < c.min ? "below the minimum \(c.min)" : "above the maximum \(c.max)"
        return "\(reading.device)/\(reading.metric): value \(reading.value) at \(reading.ts) is \(bound) (filter '\(rules[rule].match)' range)"
    }

    private mutating func takeToken(slot: Int, rule: Int, ts: Int64, compiled c: CompiledRule) -> Bool {
        if devices[slot].buckets.isEmpty {
            devices[slot].buckets = Array(repeating: TokenBucket(), count: compiled.count)
        }
        return devices[slot].buckets[rule].take(ts: ts, perMs: c.ratePerMs, capacity: c.burst)
    }

    private mutating func downsample(_ reading: Reading, slot: Int, series s: Int, stage k: Int, rule: CompiledRule) -> FilterVerdict {
        let start = WindowMath.start(of: reading.ts, size: rule.bucketMs)
        let bucket = devices[slot].series[s].stages[k].bucket
        if bucket.emittedAny && start <= bucket.emittedThrough { return .dropped(reason: .downsample) }
        if bucket.open {
            if start == bucket.start {
                devices[slot].series[s].stages[k].bucket.aggregate.add(ts: reading.ts, value: reading.value)
                return .held
            }
            if start < bucket.start { return .dropped(reason: .downsample) }
            closeBucket(slot: slot, series: s, stage: k, rule: rule)
        }
        devices[slot].series[s].stages[k].bucket.start = start
        devices[slot].series[s].stages[k].bucket.aggregate = WindowAggregate(ts: reading.ts, value: reading.value)
        devices[slot].series[s].stages[k].bucket.open = true
        openBuckets += 1
        return .held
    }

    private mutating func closeBucket(slot: Int, series s: Int, stage k: Int, rule: CompiledRule) {
        let bucket = devices[slot].series[s].stages[k].bucket
        guard bucket.open else { return }
        let a = bucket.aggregate
        let value: Double
        switch rule.aggregate {
        case .mean: value = a.mean
        case .min: value = a.min
        case .max: value = a.max
        case .last: value = a.lastValue
        }
        ready.append(Reading(device: devices[slot].name, metric: devices[slot].names[s], ts: bucket.start, value: value))
        devices[slot].series[s].stages[k].bucket.open = false
        devices[slot].series[s].stages[k].bucket.emittedAny = true
        devices[slot].series[s].stages[k].bucket.emittedThrough = bucket.start
        openBuckets -= 1
    }
}

// MARK: - Internal state types

/// A rule reduced to plain numbers for the hot path.
private struct CompiledRule: Sendable {
    var glob: NameGlob?
    var hasRange = false
    var min = -Double.infinity
    var max = Double.infinity
    var dedupWindowMs: Int64 = 0
    var hasDeadband = false
    var bandAbs: Double = 0
    var bandFraction: Double = -1 // < 0: absolute band
    var heartbeatMs: Int64 = 0
    var ratePerMs: Double = 0
    var burst: Double = 1
    var bucketMs: Int64 = 0
    var aggregate: DownsampleSpec.Aggregate = .mean

    init(_ rule: FilterRule) {
        glob = try? NameGlob(rule.match)
        if let range = rule.range {
            hasRange = true
            min = range.min ?? -.infinity
            max = range.max ?? .infinity
        }
        dedupWindowMs = Swift.max(0, rule.dedupWindowMs ?? 0)
        if let deadband = rule.deadband {
            hasDeadband = true
            if let pct = deadband.percent { bandFraction = pct / 100 } else { bandAbs = deadband.abs ?? 0 }
            heartbeatMs = Swift.max(0, deadband.heartbeatMs ?? 0)
        }
        if let rate = rule.rateLimitPerSecond, rate > 0, rate.isFinite {
            ratePerMs = rate / 1000
            burst = Swift.max(1, rate)
        }
        if let downsample = rule.downsample, downsample.bucketMs > 0 {
            bucketMs = downsample.bucketMs
            aggregate = downsample.aggregate
        }
    }
}

private struct DeviceState: Sendable {
    var name: String
    var live = true
    var lastTouched: UInt64 = 0
    /// Metric names, parallel to `series`.
    var names: [String] = []
    var series: [SeriesState] = []
    /// Built once a device has many metrics; a linear scan is faster below that.
    var lookup: [String: Int]? = nil
    /// Rate-limit buckets, one per rule (allocated on first use).
    var buckets: [TokenBucket] = []

    init(name: String) { self.name = name }

    func index(of metric: String) -> Int? {
        if let lookup { return lookup[metric] }
        for i in names.indices where names[i] == metric { return i }
        return nil
    }

    mutating func add(metric: String, stages: [StageState]) -> Int {
        names.append(metric)
        series.append(SeriesState(stages: stages))
        let i = names.count - 1
        if lookup != nil {
            lookup?[metric] = i
        } else if names.count > 16 {
            lookup = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        }
        return i
    }
}

private struct SeriesState: Sendable {
    var stages: [StageState]
}

/// One matching rule's state for one series.
private struct StageState: Sendable {
    let rule: Int
    var dedup = DedupWindow()
    var deadband = DeadbandState()
    var bucket = BucketState()
    init(rule: Int) { self.rule = rule }
}

/// The event times seen recently, sorted, oldest first from `head`.
private struct DedupWindow: Sendable {
    var times: [Int64] = []
    var head = 0

    /// Whether `ts` was seen within `window` of the newest time; records it when not.
    mutating func seen(_ ts: Int64, window: Int64, cap: Int) -> Bool {
        if head < times.count {
            let newest = Swift.max(times[times.count - 1], ts)
            let cutoff = newest &- window
            while head < times.count && times[head] < cutoff { head += 1 }
            // Older than the window: it cannot be judged, let it through unrecorded.
            if ts < cutoff { return false }
        }
        if head == times.count || ts > times[times.count - 1] {
            times.append(ts)
        } else {
            var lo = head, hi = times.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if times[mid] < ts { lo = mid + 1 } else { hi = mid }
            }
            if lo < times.count && times[lo] == ts { return true }
            times.insert(ts, at: lo)
        }
        if times.count - head > cap { head += 1 }
        if head >= 32 && head * 2 >= times.count {
            times.removeFirst(head)
            head = 0
        }
        return false
    }
}

private struct DeadbandState: Sendable {
    var has = false
    var value = 0.0
    var ts: Int64 = 0

    mutating func admit(_ reading: Reading, rule: CompiledRule) -> Bool {
        var pass = !has
        if !pass {
            let change = Swift.abs(reading.value - value)
            if rule.bandFraction < 0 {
                pass = change > rule.bandAbs
            } else {
                pass = value == 0 ? change > 0 : change > rule.bandFraction * Swift.abs(value)
            }
        }
        if !pass && rule.heartbeatMs > 0 && reading.ts &- ts >= rule.heartbeatMs { pass = true }
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
    var open = false
    var start: Int64 = 0
    var aggregate = WindowAggregate(ts: 0, value: 0)
    var emittedAny = false
    var emittedThrough: Int64 = 0
}
