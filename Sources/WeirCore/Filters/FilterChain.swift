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
///
/// A payload's readings go faster through `apply(_:into:)`, which gives the same
/// decisions without copying each kept reading into a verdict.
public struct FilterChain: Sendable {
    /// The state and the stages (`FilterEngine` explains the layout). Copied before a
    /// mutation when another chain shares it, so a chain behaves as a value.
    private var engine: FilterEngine

    /// A chain over `rules` (validate them first with `FilterRule.validate()`; a rule that
    /// does not parse matches nothing).
    public init(rules: [FilterRule]) {
        engine = FilterEngine(rules: rules)
    }

    /// The rules, in config order.
    public var rules: [FilterRule] { engine.rules }

    /// Most devices with state; past it the least recently seen half is forgotten.
    public var maxDevices: Int {
        get { engine.maxDevices }
        set { unique().maxDevices = newValue }
    }

    /// Most metrics with state per device; past it that device's state starts afresh.
    public var maxMetricsPerDevice: Int {
        get { engine.maxMetricsPerDevice }
        set { unique().maxMetricsPerDevice = newValue }
    }

    /// Most identities a series' dedup window remembers, rounded up to a power of two (the
    /// oldest go first).
    public var maxDedupEntriesPerSeries: Int {
        get { engine.maxDedupEntriesPerSeries }
        set { unique().maxDedupEntriesPerSeries = newValue }
    }

    /// Runs one reading through the rules that match it.
    public mutating func apply(_ reading: Reading) -> FilterVerdict {
        let engine = unique()
        switch engine.judge(reading) {
        case .pass: return .pass(reading)
        case .held: return .held
        case .dropped(let reason): return .dropped(reason: reason)
        case .deadLetter: return .deadLetter(reason: engine.deadLetterReason(for: reading))
        }
    }

    /// Runs a batch of readings (typically one payload's) through the rules, in order,
    /// into `results` (which it empties first): the same decisions as `apply(_:)` on each
    /// reading in turn, for less work per reading.
    public mutating func apply(_ readings: [Reading], into results: inout FilterResults) {
        unique().apply(readings, into: &results)
    }

    /// The aggregates of buckets that are complete: those a later bucket of their series
    /// has started, and those whose end `now` (epoch ms, the caller's clock) has reached.
    public mutating func flushDue(now: Int64) -> [Reading] {
        unique().flushDue(now: now)
    }

    /// Every held bucket's aggregate, complete or not (at shutdown).
    public mutating func flushAll() -> [Reading] {
        unique().flushAll()
    }

    /// The engine, copied first if another chain shares it.
    private mutating func unique() -> FilterEngine {
        if !isKnownUniquelyReferenced(&engine) { engine = FilterEngine(copying: engine) }
        return engine
    }
}
