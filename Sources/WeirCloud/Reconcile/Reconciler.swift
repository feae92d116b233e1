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
/// A device's watermark is `newest ts seen − max_out_of_order`. A reading is late when its
/// window ends at or before its device's watermark **as it stood before the batch**; the
/// batch then advances the watermark to its own newest reading. Readings of one batch
/// never make each other late, whatever their order in it (the binary codec groups them
/// by series, so a device's second metric comes after its first has reached the end of
/// the batch). So a backlog replayed oldest-first advances its device's watermark as it
/// arrives and is not late, and one device never makes another's readings late.
/// Under `late_policy: drop`, a reading more than `allowed_lateness` past the end of
/// its earliest-closing window is not applied to any window (so all sizes stay consistent)
/// and goes to the audit table.
///
/// New readings are folded into per-window deltas in memory and each touched window is
/// read (unless cached) and written once per batch. Devices and series are interned to
/// dense slots, so the per-reading work is one string hash and array accesses.
///
/// The caches (device ids and newest ts, series ids, open windows) are valid only while
/// this reconciler is the store's only writer; a store that shares its database with other
/// writers must call ``invalidateCaches()`` before each batch. After a failed batch the
/// caller must call ``invalidateCaches()``, because the transaction rolled back.
public struct Reconciler: Sendable {
    public let settings: ReconcileSettings
    /// Event times accepted: about ±31,000 years around 1970, far from Int64's ends.
    public static let tsRange: ClosedRange<Int64> = -1_000_000_000_000_000...1_000_000_000_000_000

    struct DeviceState {
        var name: String
        var id: Int64
        var maxTs: Int64?
        /// The device's series: metric name and series slot (a device has few metrics).
        var series: [(metric: String, slot: Int)] = []
    }

    struct SeriesState {
        var id: Int64
        var deviceSlot: Int
        /// Open windows of this series known to be stored, with their stored values.
        var open: [WindowRecord] = []
    }

    struct WindowDelta {
        var sizeMs: Int64
        var start: Int64
        var aggregate: WindowAggregate
        var late: Int64
    }

    private var deviceSlots: [String: Int] = [:]
    private var devices: [DeviceState] = []
    private var series: [SeriesState] = []
    // Scratch space reused by every batch, indexed by slot.
    private var windowDeltas: [[WindowDelta]] = []
    private var deviceDeltas: [DeviceDelta] = []

    public init(settings: ReconcileSettings) {
        self.settings = settings
    }

    /// Forgets everything cached; it is reloaded from the store on demand.
    public mutating func invalidateCaches() {
        deviceSlots.removeAll()
        devices.removeAll()
        series.removeAll()
        windowDeltas.removeAll()
        deviceDeltas.removeAll()
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
        let dropPolicy = settings.latePolicy == .drop
        var touchedSeries: [Int] = []
        var touchedDevices: [Int] = []
        defer {
            // Leave the scratch space empty even when the batch fails.
            for slot in touchedSeries where slot < windowDeltas.count { windowDeltas[slot].removeAll(keepingCapacity: true) }
            for slot in touchedDevices where slot < deviceDeltas.count { deviceDeltas[slot] = DeviceDelta() }
        }

        var lastDevice = ""
        var lastMetric = ""
        var lastSlots = (series: -1, device: -1)
        for (index, reading) in batch.readings.enumerated() {
            // Binary batches come grouped by series: most readings repeat the last lookup.
            if lastSlots.series < 0 || reading.device != lastDevice || reading.metric != lastMetric {
                lastSlots = try seriesSlot(device: reading.device, metric: reading.metric, session: &session)
                lastDevice = reading.device
                lastMetric = reading.metric
            }
            let (seriesSlot, slot) = lastSlots
            let ts = reading.ts
            guard Self.tsRange.contains(ts) else {
                // Window and watermark arithmetic would overflow near Int64's ends.
                let rejectedReading = RejectedReading(
                    index: Self.bodyIndex(of: index, skipping: decoded.rejected),
                    reason: "ts \(ts) is out of range (epoch milliseconds within ±\(Self.tsRange.upperBound) expected)",
                    raw: #"{"device":"\#(reading.device)","metric":"\#(reading.metric)","ts":\#(ts),"value":\#(reading.value)}"#)
                outcome.rejected.append(rejectedReading)
                try session.recordRejected(gateway: batch.gateway, batch: batch.id, reading: rejectedReading, receivedAt: receivedAt)
                continue
            }
            // The watermark before this batch: `maxTs` only moves once the batch is folded in.
            let maxTs = devices[slot].maxTs
            if !deviceDeltas[slot].touched {
                deviceDeltas[slot].touched = true
                touchedDevices.append(slot)
            }

            if let maxTs, ts < maxTs - settings.rawRetentionMs {
                deviceDeltas[slot].tooLate += 1
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
            // A reading at or after the watermark cannot be in a closed window.
            if let watermark, ts < watermark {
                for size in sizes {
                    let end = WindowMath.start(of: ts, size: size) + size
                    if end <= watermark {
                        isLate = true
                        if dropPolicy, watermark - end > settings.allowedLatenessMs { dropIt = true }
                    }
                }
            }

            if let stored = try session.insertRaw(seriesID: series[seriesSlot].id, ts: ts, value: reading.value, applied: !dropIt) {
                outcome.duplicates += 1
                deviceDeltas[slot].duplicates += 1
                if stored != reading.value {
                    outcome.conflicts += 1
                    deviceDeltas[slot].conflicts += 1
                    logger?.debug("conflicting duplicate; first value kept", metadata: [
                        "weir.device": "\(reading.device)", "weir.metric": "\(reading.metric)", "weir.ts": "\(ts)",
                        "weir.stored": "\(stored)", "weir.received": "\(reading.value)",
                    ])
                }
                continue
            }

            if isLate {
                outcome.late += 1
                deviceDeltas[slot].late += 1
            }
            if deviceDeltas[slot].newestTs.map({ ts > $0 }) ?? true {
                deviceDeltas[slot].newestTs = ts
            }
            if dropIt {
                outcome.droppedLate += 1
                deviceDeltas[slot].droppedLate += 1
                try session.recordLateDrop(seriesID: series[seriesSlot].id, ts: ts, value: reading.value,
                                           watermark: watermark ?? ts, receivedAt: receivedAt)
                continue
            }
            outcome.accepted += 1
            deviceDeltas[slot].readings += 1
            if windowDeltas[seriesSlot].isEmpty { touchedSeries.append(seriesSlot) }
            for size in sizes {
                let start = WindowMath.start(of: ts, size: size)
                let windowLate: Int64 = isLate && (watermark.map { start + size <= $0 } ?? false) ? 1 : 0
                if let i = windowDeltas[seriesSlot].firstIndex(where: { $0.start == start && $0.sizeMs == size }) {
                    windowDeltas[seriesSlot][i].aggregate.add(ts: ts, value: reading.value)
                    windowDeltas[seriesSlot][i].late += windowLate
                } else {
                    windowDeltas[seriesSlot].append(WindowDelta(sizeMs: size, start: start,
                                                                aggregate: WindowAggregate(ts: ts, value: reading.value), late: windowLate))
                }
            }
        }

        // The batch advances its devices' watermarks.
        for slot in touchedDevices {
            if let newest = deviceDeltas[slot].newestTs, devices[slot].maxTs.map({ newest > $0 }) ?? true {
                devices[slot].maxTs = newest
            }
        }

        // Fold the deltas into the stored windows, each touched window once.
        for seriesSlot in touchedSeries {
            let seriesID = series[seriesSlot].id
            let watermark = devices[series[seriesSlot].deviceSlot].maxTs.map { $0 - moo }
            for delta in windowDeltas[seriesSlot] {
                var record: WindowRecord
                var isNew = false
                let cachedIndex = series[seriesSlot].open.firstIndex { $0.start == delta.start && $0.sizeMs == delta.sizeMs }
                if let cachedIndex {
                    record = series[seriesSlot].open[cachedIndex]
                    record.aggregate.merge(delta.aggregate)
                } else if let stored = try session.window(WindowKey(seriesID: seriesID, sizeMs: delta.sizeMs, start: delta.start)) {
                    record = stored
                    record.aggregate.merge(delta.aggregate)
                } else {
                    record = WindowRecord(sizeMs: delta.sizeMs, start: delta.start, aggregate: delta.aggregate)
                    isNew = true
                }
                if delta.late > 0 {
                    record.late += delta.late
                    record.revision += 1
                }
                try session.saveWindow(seriesID: seriesID, record, isNew: isNew)
                // Keep open windows in memory (they will be touched again); forget closed ones.
                let open = watermark.map { record.end > $0 } ?? true
                switch (cachedIndex, open) {
                case (let i?, true): series[seriesSlot].open[i] = record
                case (let i?, false): series[seriesSlot].open.remove(at: i)
                case (nil, true): series[seriesSlot].open.append(record)
                case (nil, false): break
                }
            }
            if let watermark, series[seriesSlot].open.count > sizes.count * 4 {
                series[seriesSlot].open.removeAll { $0.end <= watermark }
            }
        }

        // Drop-ledger rows from the edge.
        for (index, drop) in batch.drops.enumerated() {
            let slot = try deviceSlot(drop.device, session: &session)
            let stored = try session.recordEdgeDrop(deviceID: devices[slot].id, drop: drop, gateway: batch.gateway,
                                                    batch: batch.id, index: index, receivedAt: receivedAt)
            if stored {
                if !deviceDeltas[slot].touched {
                    deviceDeltas[slot].touched = true
                    touchedDevices.append(slot)
                }
                deviceDeltas[slot].droppedAtEdge += drop.count
            }
        }

        for slot in touchedDevices {
            let state = devices[slot]
            if let maxTs = state.maxTs {
                outcome.newestWatermark = max(outcome.newestWatermark ?? Int64.min, maxTs - moo)
            }
            try session.updateDevice(id: state.id, maxTs: state.maxTs, lastSeen: receivedAt, delta: deviceDeltas[slot])
        }
        for rejectedReading in decoded.rejected {
            try session.recordRejected(gateway: batch.gateway, batch: batch.id, reading: rejectedReading, receivedAt: receivedAt)
        }
        // Refused drop-ledger rows share the rejected table; negative indices (-1 - row)
        // keep them apart from readings' indices.
        for rejectedDrop in decoded.rejectedDrops {
            var row = rejectedDrop
            row.index = -1 - rejectedDrop.index
            try session.recordRejected(gateway: batch.gateway, batch: batch.id, reading: row, receivedAt: receivedAt)
        }
        try session.recordBatch(gateway: batch.gateway, outcome: outcome, receivedAt: receivedAt)
        outcome.rejected.sort { $0.index < $1.index }
        return outcome
    }

    /// The watermark the reconciler currently holds for a device, if cached.
    public func cachedWatermark(device: String) -> Int64? {
        guard let slot = deviceSlots[device] else { return nil }
        return devices[slot].maxTs.map { $0 - settings.maxOutOfOrderMs }
    }

    /// The series slot and device slot of `(device, metric)`, interning both if new.
    @inline(__always)
    private mutating func seriesSlot<Session: ReconcileSession>(
        device: String, metric: String, session: inout Session
    ) throws -> (series: Int, device: Int) {
        let slot = try deviceSlot(device, session: &session)
        for entry in devices[slot].series where entry.metric == metric {
            return (entry.slot, slot)
        }
        let id = try session.series(deviceID: devices[slot].id, metric: metric)
        let seriesSlot = series.count
        series.append(SeriesState(id: id, deviceSlot: slot))
        windowDeltas.append([])
        devices[slot].series.append((metric, seriesSlot))
        return (seriesSlot, slot)
    }

    @inline(__always)
    private mutating func deviceSlot<Session: ReconcileSession>(_ name: String, session: inout Session) throws -> Int {
        if let slot = deviceSlots[name] { return slot }
        let (id, maxTs) = try session.device(named: name)
        let slot = devices.count
        devices.append(DeviceState(name: name, id: id, maxTs: maxTs))
        deviceDeltas.append(DeviceDelta())
        deviceSlots[name] = slot
        return slot
    }

    /// Maps an index into the batch's valid readings back to the index in the body.
    static func bodyIndex(of validIndex: Int, skipping rejected: [RejectedReading]) -> Int {
        guard !rejected.isEmpty else { return validIndex }
        var index = validIndex
        for r in rejected where r.index <= index { index += 1 }
        return index
    }
}
