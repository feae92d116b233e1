import Logging
import WeirCore

/// The semantics of weir-cloud, in one place: deduplication on `(device, metric, ts)`,
/// conflicts (first value stays), per-device watermarks, tumbling windows for every
/// configured size, late readings under `late_policy`, and `raw_retention`.
///
/// A store drives one batch through four steps, in one transaction:
///
/// ```swift
/// let plan = Reconciler.plan(decoded)                          // names the batch touches
/// let keys = try store.loadKeys(plan)                           // create new ones, lock the devices
/// let raw = try store.loadRaw(reconciler.rawLookups(decoded, keys: keys))
/// var folded = try reconciler.fold(decoded, keys: keys, storedRaw: raw, receivedAt: now)
/// let windows = try store.loadWindows(folded.windowLookups)
/// let changes = reconciler.decide(folded, storedWindows: windows, storedLedger: ledger)
/// try store.commit(changes)                                     // then answer changes.outcome
/// ```
///
/// The steps between the loads are pure: everything a batch means is decided here from
/// the state the store loaded, so every store (SQLite, PostgreSQL) gives the same answers,
/// and a store makes a handful of bulk statements per batch instead of one per reading.
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
/// read and written once per batch. A reading newer than its device's newest stored one
/// cannot be stored yet, so only older readings are looked up (a live stream or a backlog
/// replayed oldest-first needs almost no lookups); repeats inside the batch are found
/// without the store.
///
/// The reconciler keeps no state between batches: caches are the store's business.
public struct Reconciler: Sendable {
    public let settings: ReconcileSettings
    /// Event times accepted: about ±31,000 years around 1970, far from Int64's ends.
    public static let tsRange: ClosedRange<Int64> = -1_000_000_000_000_000...1_000_000_000_000_000

    public init(settings: ReconcileSettings) {
        self.settings = settings
    }

    // MARK: plan

    /// The devices and series a batch names (step 1).
    public static func plan(_ decoded: DecodedBatch) -> BatchPlan {
        var devices = Set<String>()
        var series: [SeriesName] = []
        var seen = Set<SeriesName>()
        var lastDevice = ""
        var lastMetric = ""
        var first = true
        for reading in decoded.batch.readings {
            // Binary batches come grouped by series: most readings repeat the last one.
            if !first && reading.device == lastDevice && reading.metric == lastMetric { continue }
            first = false
            lastDevice = reading.device
            lastMetric = reading.metric
            let name = SeriesName(device: reading.device, metric: reading.metric)
            if seen.insert(name).inserted {
                series.append(name)
                devices.insert(reading.device)
            }
        }
        for drop in decoded.batch.drops { devices.insert(drop.device) }
        return BatchPlan(devices: devices.sorted(), series: series)
    }

    /// The stored readings the decision needs (step 2): readings no newer than their
    /// device's newest stored reading (a newer one cannot be stored yet) and not past
    /// `raw_retention` (those are rejected without a look).
    public func rawLookups(_ decoded: DecodedBatch, keys: BatchKeys) throws -> [(deviceID: Int64, key: RawKey)] {
        var lookups: [(deviceID: Int64, key: RawKey)] = []
        var cursor = KeyCursor()
        for reading in decoded.batch.readings {
            let (seriesID, device) = try cursor.keys(of: reading, in: keys)
            guard let maxTs = device.maxTs, reading.ts <= maxTs, Self.tsRange.contains(reading.ts),
                  reading.ts >= maxTs - settings.rawRetentionMs else { continue }
            lookups.append((device.id, RawKey(seriesID: seriesID, ts: reading.ts)))
        }
        return lookups
    }

    // MARK: decide

    /// A batch with its readings classified and folded into window deltas, waiting for the
    /// stored windows it touches (``windowLookups``).
    public struct FoldedBatch: Sendable {
        struct DeviceState: Sendable {
            var name: String
            var id: Int64
            var maxTsBefore: Int64?
            var delta = DeviceDelta()
        }

        struct WindowDelta: Sendable {
            var sizeMs: Int64
            var start: Int64
            var aggregate: WindowAggregate
            var late: Int64
        }

        struct SeriesState: Sendable {
            var id: Int64
            var deviceSlot: Int
            /// The newest ts among the series' new readings in this batch.
            var newestInBatch: Int64?
            /// The series' new readings in this batch by ts, built once its readings stop
            /// arriving in ascending order.
            var inBatch: [Int64: Double]?
            /// Index in `changes.raw` of the series' first new reading.
            var firstRaw: Int?
            var deltas: [WindowDelta] = []
        }

        var changes: BatchChanges
        var devices: [DeviceState] = []
        var deviceSlots: [String: Int] = [:]
        var series: [SeriesState] = []
        var seriesSlots: [Int64: Int] = [:]
        var touchedDevices: [Int] = []
        var drops: [DropRecord]
        var dropDeviceIDs: [Int64] = []

        /// The stored windows the decision needs: every window a new reading falls in.
        public var windowLookups: [(deviceID: Int64, key: WindowKey)] {
            var lookups: [(Int64, WindowKey)] = []
            for s in series {
                let deviceID = devices[s.deviceSlot].id
                for d in s.deltas { lookups.append((deviceID, WindowKey(seriesID: s.id, sizeMs: d.sizeMs, start: d.start))) }
            }
            return lookups
        }
    }

    /// Classifies every reading against the loaded state (step 3): out of range, too late,
    /// duplicate (of a stored reading or of an earlier one in the batch), late, dropped by
    /// policy, or new; and folds the new ones into per-window deltas.
    public func fold(_ decoded: DecodedBatch, keys: BatchKeys, storedRaw: [RawKey: Double], receivedAt: Int64,
                     logger: Logger? = nil) throws -> FoldedBatch {
        let batch = decoded.batch
        var outcome = BatchOutcome(batch: batch.id)
        outcome.received = decoded.readingCount
        outcome.rejected = decoded.rejected
        var folded = FoldedBatch(changes: BatchChanges(gateway: batch.gateway, receivedAt: receivedAt, outcome: outcome),
                                 drops: batch.drops)
        folded.changes.raw.reserveCapacity(batch.readings.count)
        // Refused drop-ledger rows share the rejected table; negative indices (-1 - row)
        // keep them apart from readings' indices.
        folded.changes.rejectedDrops = decoded.rejectedDrops.map { drop in
            var row = drop
            row.index = -1 - drop.index
            return row
        }
        let sizes = settings.windowSizesMs
        let moo = settings.maxOutOfOrderMs
        let dropPolicy = settings.latePolicy == .drop

        var lastDevice = ""
        var lastMetric = ""
        var lastSlots = (series: -1, device: -1)
        for (index, reading) in batch.readings.enumerated() {
            if lastSlots.series < 0 || reading.device != lastDevice || reading.metric != lastMetric {
                lastSlots = try slots(of: reading, keys: keys, &folded)
                lastDevice = reading.device
                lastMetric = reading.metric
            }
            let (seriesSlot, slot) = lastSlots
            let ts = reading.ts
            guard Self.tsRange.contains(ts) else {
                // Window and watermark arithmetic would overflow near Int64's ends.
                folded.changes.outcome.rejected.append(RejectedReading(
                    index: Self.bodyIndex(of: index, skipping: decoded.rejected),
                    reason: "ts \(ts) is out of range (epoch milliseconds within ±\(Self.tsRange.upperBound) expected)",
                    raw: Self.rawText(reading)))
                continue
            }
            // The watermark before this batch: the device's newest ts moves only once the batch is folded in.
            let maxTs = folded.devices[slot].maxTsBefore
            if !folded.devices[slot].delta.touched {
                folded.devices[slot].delta.touched = true
                folded.touchedDevices.append(slot)
            }
            if let maxTs, ts < maxTs - settings.rawRetentionMs {
                folded.devices[slot].delta.tooLate += 1
                folded.changes.outcome.tooLate += 1
                folded.changes.outcome.rejected.append(RejectedReading(
                    index: Self.bodyIndex(of: index, skipping: decoded.rejected),
                    reason: "ts \(ts) is more than raw_retention (\(DurationText.formatMilliseconds(settings.rawRetentionMs))) older than device \(reading.device)'s newest reading (\(maxTs)): too late to deduplicate",
                    raw: Self.rawText(reading)))
                continue
            }

            // Lateness against the watermark before this batch.
            let watermark = maxTs.map { Watermark.of(newestTs: $0, maxOutOfOrderMs: moo) }
            var isLate = false
            var dropIt = false
            // A reading at or after the watermark cannot be in a closed window.
            if let watermark, ts < watermark {
                for size in sizes {
                    let end = WindowMath.start(of: ts, size: size) + size
                    if WindowState.isClosed(end: end, watermark: watermark) {
                        isLate = true
                        if dropPolicy, watermark - end > settings.allowedLatenessMs { dropIt = true }
                    }
                }
            }

            let seriesID = folded.series[seriesSlot].id
            if let stored = Self.storedValue(ts: ts, value: reading.value, seriesSlot: seriesSlot, maxTs: maxTs,
                                             storedRaw: storedRaw, &folded) {
                folded.changes.outcome.duplicates += 1
                folded.devices[slot].delta.duplicates += 1
                if stored != reading.value {
                    folded.changes.outcome.conflicts += 1
                    folded.devices[slot].delta.conflicts += 1
                    logger?.debug("conflicting duplicate; first value kept", metadata: [
                        "weir.device": "\(reading.device)", "weir.metric": "\(reading.metric)", "weir.ts": "\(ts)",
                        "weir.stored": "\(stored)", "weir.received": "\(reading.value)",
                    ])
                }
                continue
            }
            let deviceID = folded.devices[slot].id
            folded.changes.raw.append(RawRow(deviceID: deviceID, seriesID: seriesID, ts: ts, value: reading.value, applied: !dropIt))

            if isLate {
                folded.changes.outcome.late += 1
                folded.devices[slot].delta.late += 1
            }
            if folded.devices[slot].delta.newestTs.map({ ts > $0 }) ?? true {
                folded.devices[slot].delta.newestTs = ts
            }
            if dropIt {
                folded.changes.outcome.droppedLate += 1
                folded.devices[slot].delta.droppedLate += 1
                folded.changes.lateDrops.append(LateDropRow(deviceID: deviceID, seriesID: seriesID, ts: ts,
                                                            value: reading.value, watermark: watermark ?? ts))
                continue
            }
            folded.changes.outcome.accepted += 1
            folded.devices[slot].delta.readings += 1
            for size in sizes {
                let start = WindowMath.start(of: ts, size: size)
                let windowLate: Int64 = isLate && WindowState(end: start + size, watermark: watermark) == .closed ? 1 : 0
                if let i = folded.series[seriesSlot].deltas.firstIndex(where: { $0.start == start && $0.sizeMs == size }) {
                    folded.series[seriesSlot].deltas[i].aggregate.add(ts: ts, value: reading.value)
                    folded.series[seriesSlot].deltas[i].late += windowLate
                } else {
                    folded.series[seriesSlot].deltas.append(FoldedBatch.WindowDelta(
                        sizeMs: size, start: start, aggregate: WindowAggregate(ts: ts, value: reading.value), late: windowLate))
                }
            }
        }
        for drop in batch.drops {
            guard let device = keys.devices[drop.device] else {
                throw WeirError(.storage, "the store did not load device \(drop.device) of a drop-ledger row")
            }
            folded.dropDeviceIDs.append(device.id)
            if folded.deviceSlots[drop.device] == nil {
                folded.deviceSlots[drop.device] = folded.devices.count
                folded.devices.append(FoldedBatch.DeviceState(name: drop.device, id: device.id, maxTsBefore: device.maxTs))
            }
        }
        return folded
    }

    /// The batch's changes (step 4), from the stored windows it touches and the indexes of
    /// its drop-ledger rows already stored (a resend).
    public func decide(_ folded: consuming FoldedBatch, storedWindows: [WindowKey: WindowRecord],
                       storedLedger: Set<Int>) -> BatchChanges {
        let moo = settings.maxOutOfOrderMs
        var changes = folded.changes
        // The batch advances its devices' watermarks.
        var maxTsAfter = folded.devices.map(\.maxTsBefore)
        for slot in folded.touchedDevices {
            if let newest = folded.devices[slot].delta.newestTs, maxTsAfter[slot].map({ newest > $0 }) ?? true {
                maxTsAfter[slot] = newest
            }
        }
        // Fold the deltas into the stored windows, each touched window once.
        for s in folded.series {
            let deviceID = folded.devices[s.deviceSlot].id
            for delta in s.deltas {
                let key = WindowKey(seriesID: s.id, sizeMs: delta.sizeMs, start: delta.start)
                var record: WindowRecord
                let isNew: Bool
                if let stored = storedWindows[key] {
                    record = stored
                    record.aggregate.merge(delta.aggregate)
                    isNew = false
                } else {
                    record = WindowRecord(sizeMs: delta.sizeMs, start: delta.start, aggregate: delta.aggregate)
                    isNew = true
                }
                if delta.late > 0 {
                    record.late += delta.late
                    record.revision += 1
                }
                changes.windows.append(WindowWrite(deviceID: deviceID, key: key, record: record, isNew: isNew))
            }
        }
        // Drop-ledger rows from the edge, each once.
        var touched = folded.touchedDevices
        for (index, drop) in folded.drops.enumerated() where !storedLedger.contains(index) {
            let slot = folded.deviceSlots[drop.device]!  // every drop's device got a slot in fold
            changes.edgeDrops.append(EdgeDropRow(deviceID: folded.dropDeviceIDs[index], index: index, drop: drop))
            if !folded.devices[slot].delta.touched {
                folded.devices[slot].delta.touched = true
                touched.append(slot)
            }
            folded.devices[slot].delta.droppedAtEdge += drop.count
        }
        for slot in touched {
            let state = folded.devices[slot]
            if let maxTs = maxTsAfter[slot] {
                changes.outcome.newestWatermark = max(changes.outcome.newestWatermark ?? Int64.min, Watermark.of(newestTs: maxTs, maxOutOfOrderMs: moo))
            }
            changes.devices.append(DeviceWrite(id: state.id, maxTs: maxTsAfter[slot], lastSeen: changes.receivedAt, delta: state.delta))
        }
        changes.outcome.rejected.sort { $0.index < $1.index }
        return changes
    }

    // MARK: helpers

    /// The value stored first for the reading's identity, if any: in the store (only a
    /// reading no newer than its device's newest can be there) or earlier in this batch.
    /// A new reading is remembered for the rest of the batch.
    @inline(__always)
    private static func storedValue(ts: Int64, value: Double, seriesSlot: Int, maxTs: Int64?,
                                    storedRaw: [RawKey: Double], _ folded: inout FoldedBatch) -> Double? {
        if let maxTs, ts <= maxTs, let stored = storedRaw[RawKey(seriesID: folded.series[seriesSlot].id, ts: ts)] {
            return stored
        }
        // Inside the batch: while a series' readings ascend, each is new.
        if let newest = folded.series[seriesSlot].newestInBatch, ts <= newest {
            if folded.series[seriesSlot].inBatch == nil {
                var seen: [Int64: Double] = [:]
                let id = folded.series[seriesSlot].id
                for row in folded.changes.raw[(folded.series[seriesSlot].firstRaw ?? 0)...] where row.seriesID == id {
                    if seen[row.ts] == nil { seen[row.ts] = row.value }
                }
                folded.series[seriesSlot].inBatch = seen
            }
            if let earlier = folded.series[seriesSlot].inBatch?[ts] { return earlier }
        } else {
            folded.series[seriesSlot].newestInBatch = ts
        }
        if folded.series[seriesSlot].firstRaw == nil { folded.series[seriesSlot].firstRaw = folded.changes.raw.count }
        if folded.series[seriesSlot].inBatch != nil { folded.series[seriesSlot].inBatch?[ts] = value }
        return nil
    }

    /// The series and device slots of a reading, adding them to the batch if new.
    private func slots(of reading: Reading, keys: BatchKeys, _ folded: inout FoldedBatch) throws -> (series: Int, device: Int) {
        guard let device = keys.devices[reading.device] else {
            throw WeirError(.storage, "the store did not load device \(reading.device)")
        }
        guard let seriesID = keys.series[SeriesName(device: reading.device, metric: reading.metric)] else {
            throw WeirError(.storage, "the store did not load series \(reading.device)/\(reading.metric)")
        }
        let deviceSlot: Int
        if let slot = folded.deviceSlots[reading.device] {
            deviceSlot = slot
        } else {
            deviceSlot = folded.devices.count
            folded.devices.append(FoldedBatch.DeviceState(name: reading.device, id: device.id, maxTsBefore: device.maxTs))
            folded.deviceSlots[reading.device] = deviceSlot
        }
        if let slot = folded.seriesSlots[seriesID] { return (slot, deviceSlot) }
        let slot = folded.series.count
        folded.series.append(FoldedBatch.SeriesState(id: seriesID, deviceSlot: deviceSlot))
        folded.seriesSlots[seriesID] = slot
        return (slot, deviceSlot)
    }

    /// Walks a batch's readings, looking keys up only when the series changes.
    private struct KeyCursor {
        var device = ""
        var metric = ""
        var last: (Int64, StoredDevice)?

        mutating func keys(of reading: Reading, in keys: BatchKeys) throws -> (Int64, StoredDevice) {
            if let last, reading.device == device, reading.metric == metric { return last }
            guard let stored = keys.devices[reading.device],
                  let seriesID = keys.series[SeriesName(device: reading.device, metric: reading.metric)] else {
                throw WeirError(.storage, "the store did not load series \(reading.device)/\(reading.metric)")
            }
            device = reading.device
            metric = reading.metric
            last = (seriesID, stored)
            return (seriesID, stored)
        }
    }

    static func rawText(_ reading: Reading) -> String {
        #"{"device":"\#(reading.device)","metric":"\#(reading.metric)","ts":\#(reading.ts),"value":\#(reading.value)}"#
    }

    /// Maps an index into the batch's valid readings back to the index in the body.
    static func bodyIndex(of validIndex: Int, skipping rejected: [RejectedReading]) -> Int {
        guard !rejected.isEmpty else { return validIndex }
        var index = validIndex
        for r in rejected where r.index <= index { index += 1 }
        return index
    }
}
