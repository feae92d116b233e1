import Logging
import WeirCore

/// The semantics of weir-cloud, in one place: deduplication on `(device, metric, ts)`,
/// conflicts (first value stays), per-device watermarks, tumbling windows for every
/// configured size, late readings under `late_policy`, and `raw_retention`.
///
/// ```swift
/// var reconciler = Reconciler(settings: ReconcileSettings(config))
/// let outcome = try reconciler.apply(decoded, receivedAt: nowMs, session: &session)
/// ```
///
/// Readings are taken in batch order. Before each reading, its device's watermark is
/// `newest ts seen − max_out_of_order`; a reading whose window ends at or before that
/// watermark is late (for each window size separately), then the reading advances the
/// newest ts. So a backlog replayed in event order advances its device's watermark as
/// it arrives and is not late, and one device never makes another's readings late.
///
/// New readings are folded into per-window deltas in memory and each touched window is
/// read (unless cached) and written once per batch.
///
/// The caches (device ids and newest ts, series ids, open windows) are valid only while
/// this reconciler is the store's only writer; a store that shares its database with other
/// writers must call ``invalidateCaches()`` before each batch. After a failed batch the
/// caller must call ``invalidateCaches()``, because the transaction rolled back.
public struct Reconciler: Sendable {
    public let settings: ReconcileSettings
    /// Open windows kept in memory above this count are swept (closed ones evicted).
    public var windowCacheLimit = 200_000

    struct DeviceState {
        var name: String
        var id: Int64
        var maxTs: Int64?
    }

    struct SeriesRef {
        var id: Int64
        var deviceSlot: Int
    }

    struct WindowDelta {
        var aggregate: WindowAggregate
        var late: Int64
        var sizeIndex: Int
        var deviceSlot: Int
    }

    private var deviceSlots: [String: Int] = [:]
    private var deviceStates: [DeviceState] = []
    private var seriesRefs: [SeriesKey: SeriesRef] = [:]
    private var windowCache: [WindowKey: WindowRecord] = [:]

    public init(settings: ReconcileSettings) {
        self.settings = settings
    }

    /// Forgets everything cached; it is reloaded from the store on demand.
    public mutating func invalidateCaches() {
        deviceSlots.removeAll()
        deviceStates.removeAll()
        seriesRefs.removeAll()
        windowCache.removeAll()
    }

    /// Applies one batch through `session` (inside the caller's transaction).
    public mutating func apply<Session: ReconcileSession>(
        _ decoded: DecodedBatch, receivedAt: Int64, session: inout Session, logger: Logger? = nil
    ) throws -> BatchOutcome {
        let batch = decoded.batch
        var outcome = BatchOutcome(batch: batch.id)
        outcome.received = decoded.readingCount
        outcome.rejected = decoded.rejected
        let sizes = settings.windowSizesMs
        let moo = settings.maxOutOfOrderMs
        var deltas: [WindowKey: WindowDelta] = [:]
        deltas.reserveCapacity(min(batch.readings.count * sizes.count, 1 << 16))
        var deviceDeltas: [Int: DeviceDelta] = [:]
        var lastSeriesKey: SeriesKey?
        var lastRef = SeriesRef(id: 0, deviceSlot: 0)

        for (index, reading) in batch.readings.enumerated() {
            // Batches from one gateway are usually grouped by series; skip the lookup then.
            let ref: SeriesRef
            if let lastSeriesKey, lastSeriesKey.device == reading.device, lastSeriesKey.metric == reading.metric {
                ref = lastRef
            } else {
                let key = SeriesKey(device: reading.device, metric: reading.metric)
                ref = try seriesRef(key, session: &session)
                lastSeriesKey = key
                lastRef = ref
            }
            let ts = reading.ts
            let maxTs = deviceStates[ref.deviceSlot].maxTs
            var delta = deviceDeltas[ref.deviceSlot] ?? DeviceDelta()
            defer { deviceDeltas[ref.deviceSlot] = delta }

            if let maxTs, ts < maxTs - settings.rawRetentionMs {
                delta.tooLate += 1
                outcome.tooLate += 1
                let rejectedReading = RejectedReading(
                    index: Self.bodyIndex(of: index, skipping: decoded.rejected),
                    reason: "ts \(ts) is more than raw_retention (\(DurationText.formatMilliseconds(settings.rawRetentionMs))) older than device \(reading.device)'s newest reading (\(maxTs)): too late to deduplicate",
                    raw: #"{"device":"\#(reading.device)","metric":"\#(reading.metric)","ts":\#(ts),"value":\#(reading.value)}"#)
                outcome.rejected.append(rejectedReading)
                try session.recordRejected(gateway: batch.gateway, batch: batch.id, reading: rejectedReading, receivedAt: receivedAt)
                continue
            }

            // Lateness against the watermark before this reading.
            let watermark = maxTs.map { $0 - moo }
            var isLate = false
            var dropIt = false
            if let watermark {
                for size in sizes {
                    let end = WindowMath.start(of: ts, size: size) + size
                    if end <= watermark {
                        isLate = true
                        if settings.latePolicy == .drop, watermark - end > settings.allowedLatenessMs { dropIt = true }
                    }
                }
            }

            if let stored = try session.insertRaw(seriesID: ref.id, ts: ts, value: reading.value, applied: !dropIt) {
                outcome.duplicates += 1
                delta.duplicates += 1
                if stored != reading.value, !(stored.isNaN && reading.value.isNaN) {
                    outcome.conflicts += 1
                    delta.conflicts += 1
                    logger?.debug("conflicting duplicate; first value kept", metadata: [
                        "weir.device": "\(reading.device)", "weir.metric": "\(reading.metric)", "weir.ts": "\(ts)",
                        "weir.stored": "\(stored)", "weir.received": "\(reading.value)",
                    ])
                }
                continue
            }

            if isLate {
                outcome.late += 1
                delta.late += 1
            }
            if maxTs == nil || ts > maxTs! {
                deviceStates[ref.deviceSlot].maxTs = ts
            }
            if dropIt {
                outcome.droppedLate += 1
                delta.droppedLate += 1
                try session.recordLateDrop(seriesID: ref.id, ts: ts, value: reading.value,
                                           watermark: watermark ?? ts, receivedAt: receivedAt)
                continue
            }
            outcome.accepted += 1
            delta.readings += 1
            for (sizeIndex, size) in sizes.enumerated() {
                let start = WindowMath.start(of: ts, size: size)
                let windowLate: Int64 = (watermark.map { start + size <= $0 } ?? false) ? 1 : 0
                let key = WindowKey(seriesID: ref.id, sizeMs: size, start: start)
                if var existing = deltas[key] {
                    existing.aggregate.add(ts: ts, value: reading.value)
                    existing.late += windowLate
                    deltas[key] = existing
                } else {
                    deltas[key] = WindowDelta(aggregate: WindowAggregate(ts: ts, value: reading.value),
                                              late: windowLate, sizeIndex: sizeIndex, deviceSlot: ref.deviceSlot)
                }
            }
        }

        // Fold the deltas into the stored windows, each touched window once.
        for (key, delta) in deltas {
            var record: WindowRecord
            if let cached = windowCache[key] {
                record = cached
                record.aggregate.merge(delta.aggregate)
            } else if let stored = try session.window(key) {
                record = stored
                record.aggregate.merge(delta.aggregate)
            } else {
                record = WindowRecord(sizeMs: key.sizeMs, start: key.start, aggregate: delta.aggregate)
            }
            if delta.late > 0 {
                record.late += delta.late
                record.revision += 1
            }
            try session.saveWindow(seriesID: key.seriesID, record)
            let watermark = deviceStates[delta.deviceSlot].maxTs.map { $0 - moo }
            if let watermark, record.end <= watermark {
                windowCache.removeValue(forKey: key)
            } else {
                windowCache[key] = record
            }
        }
        if windowCache.count > windowCacheLimit { sweepWindowCache() }

        // Drop-ledger rows from the edge.
        for (index, drop) in batch.drops.enumerated() {
            let slot = try deviceSlot(drop.device, session: &session)
            let stored = try session.recordEdgeDrop(deviceID: deviceStates[slot].id, drop: drop, gateway: batch.gateway,
                                                    batch: batch.id, index: index, receivedAt: receivedAt)
            if stored {
                deviceDeltas[slot, default: DeviceDelta()].droppedAtEdge += drop.count
            }
        }

        for (slot, delta) in deviceDeltas {
            let state = deviceStates[slot]
            if let maxTs = state.maxTs {
                outcome.newestWatermark = max(outcome.newestWatermark ?? Int64.min, maxTs - moo)
            }
            try session.updateDevice(id: state.id, maxTs: state.maxTs, lastSeen: receivedAt, delta: delta)
        }
        for rejectedReading in decoded.rejected {
            try session.recordRejected(gateway: batch.gateway, batch: batch.id, reading: rejectedReading, receivedAt: receivedAt)
        }
        try session.recordBatch(gateway: batch.gateway, outcome: outcome, receivedAt: receivedAt)
        outcome.rejected.sort { $0.index < $1.index }
        return outcome
    }

    /// The watermark the reconciler currently holds for a device (for metrics), if cached.
    public func cachedWatermark(device: String) -> Int64? {
        guard let slot = deviceSlots[device] else { return nil }
        return deviceStates[slot].maxTs.map { $0 - settings.maxOutOfOrderMs }
    }

    private mutating func seriesRef<Session: ReconcileSession>(_ key: SeriesKey, session: inout Session) throws -> SeriesRef {
        if let ref = seriesRefs[key] { return ref }
        let slot = try deviceSlot(key.device, session: &session)
        let id = try session.series(deviceID: deviceStates[slot].id, metric: key.metric)
        let ref = SeriesRef(id: id, deviceSlot: slot)
        seriesRefs[key] = ref
        return ref
    }

    private mutating func deviceSlot<Session: ReconcileSession>(_ name: String, session: inout Session) throws -> Int {
        if let slot = deviceSlots[name] { return slot }
        let (id, maxTs) = try session.device(named: name)
        let slot = deviceStates.count
        deviceStates.append(DeviceState(name: name, id: id, maxTs: maxTs))
        deviceSlots[name] = slot
        return slot
    }

    /// Evicts cached windows that have closed; if that is not enough, empties the cache.
    private mutating func sweepWindowCache() {
        var maxTsBySeries: [Int64: Int64] = [:]
        for ref in seriesRefs.values {
            if let maxTs = deviceStates[ref.deviceSlot].maxTs { maxTsBySeries[ref.id] = maxTs }
        }
        let moo = settings.maxOutOfOrderMs
        windowCache = windowCache.filter { key, record in
            guard let maxTs = maxTsBySeries[key.seriesID] else { return false }
            return record.end > maxTs - moo
        }
        if windowCache.count > windowCacheLimit / 2 { windowCache.removeAll() }
    }

    /// Maps an index into the batch's valid readings back to the index in the body.
    static func bodyIndex(of validIndex: Int, skipping rejected: [RejectedReading]) -> Int {
        guard !rejected.isEmpty else { return validIndex }
        var index = validIndex
        for r in rejected where r.index <= index { index += 1 }
        return index
    }
}
