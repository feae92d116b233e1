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
/// let raw = try store.loadRaw(reconciler.rawLookups(decoded, plan: plan, keys: keys))
/// var folded = try reconciler.fold(decoded, plan: plan, keys: keys, storedRaw: raw, receivedAt: now)
/// let windows = try store.loadWindows(folded.windowLookups)
/// let changes = try reconciler.decide(folded, storedWindows: windows, storedLedger: ledger)
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

    /// The devices and series a batch names (step 1), each reading's series and each
    /// series' device as indexes: one device-name hash per change of series, none per reading
    /// of a series that continues.
    public static func plan(_ decoded: DecodedBatch) -> BatchPlan {
        let readings = decoded.batch.readings
        var deviceIndex: [String: Int] = [:]
        var names: [String] = []
        var metrics: [[(metric: String, series: Int)]] = []
        var series: [SeriesName] = []
        var seriesDevice: [Int] = []
        var readingSeries: [Int] = []
        readingSeries.reserveCapacity(readings.count)
        func device(_ name: String) -> Int {
            if let index = deviceIndex[name] { return index }
            deviceIndex[name] = names.count
            names.append(name)
            metrics.append([])
            return names.count - 1
        }
        var last = -1
        var lastDevice = ""
        var lastMetric = ""
        for reading in readings {
            // Binary batches come grouped by series: most readings continue the last one.
            if last >= 0 && reading.device == lastDevice && reading.metric == lastMetric {
                readingSeries.append(last)
                continue
            }
            let d = device(reading.device)
            // A device has few metrics: a scan beats a hash.
            if let known = metrics[d].first(where: { $0.metric == reading.metric }) {
                last = known.series
            } else {
                last = series.count
                series.append(SeriesName(device: reading.device, metric: reading.metric))
                seriesDevice.append(d)
                metrics[d].append((reading.metric, last))
            }
            readingSeries.append(last)
            lastDevice = reading.device
            lastMetric = reading.metric
        }
        var dropDevice = decoded.batch.drops.map { device($0.device) }
        // Devices sorted by name; indexes renumbered to match.
        let order = names.indices.sorted { names[$0] < names[$1] }
        var rank = [Int](repeating: 0, count: names.count)
        for (position, index) in order.enumerated() { rank[index] = position }
        for i in seriesDevice.indices { seriesDevice[i] = rank[seriesDevice[i]] }
        for i in dropDevice.indices { dropDevice[i] = rank[dropDevice[i]] }
        return BatchPlan(devices: order.map { names[$0] }, series: series, seriesDevice: seriesDevice,
                         readingSeries: readingSeries, dropDevice: dropDevice)
    }

    /// The stored readings the decision needs (step 2): readings no newer than their
    /// device's newest stored reading (a newer one cannot be stored yet) and not past
    /// `raw_retention` (those are rejected without a look).
    public func rawLookups(_ decoded: DecodedBatch, plan: BatchPlan, keys: BatchKeys) -> [(deviceID: Int64, key: RawKey)] {
        var lookups: [(deviceID: Int64, key: RawKey)] = []
        for (index, reading) in decoded.batch.readings.enumerated() {
            let series = plan.readingSeries[index]
            let device = keys.devices[plan.seriesDevice[series]]
            guard let maxTs = device.maxTs, reading.ts <= maxTs, Self.tsRange.contains(reading.ts),
                  reading.ts >= maxTs - settings.rawRetentionMs else { continue }
            lookups.append((device.id, RawKey(seriesID: keys.series[series], ts: reading.ts)))
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
            /// Index in `changes.raw` of the series' newest new reading (-1: none yet).
            var lastRaw = -1
            var deltas: [WindowDelta] = []
        }

        var changes: BatchChanges
        /// One per `plan.devices` (slot = index in the plan).
        var devices: [DeviceState]
        /// One per `plan.series`.
        var series: [SeriesState]
        /// For each row of `changes.raw`, the index of the same series' previous row (-1: none).
        var previousRaw: [Int] = []
        var touchedDevices: [Int] = []
        var drops: [DropRecord]
        var dropSlots: [Int]

        /// The stored windows the decision needs: every window a new reading falls in. The
        /// store answers in the same order (``decide(_:storedWindows:storedLedger:)``).
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
    public func fold(_ decoded: DecodedBatch, plan: BatchPlan, keys: BatchKeys, storedRaw: [RawKey: Double], receivedAt: Int64,
                     logger: Logger? = nil) throws -> FoldedBatch {
        guard keys.devices.count == plan.devices.count, keys.series.count == plan.series.count else {
            throw WeirError(.storage, "the store loaded \(keys.devices.count) of \(plan.devices.count) devices and \(keys.series.count) of \(plan.series.count) series")
        }
        let batch = decoded.batch
        var outcome = BatchOutcome(batch: batch.id)
        outcome.received = decoded.readingCount
        outcome.rejected = decoded.rejected
        var folded = FoldedBatch(
            changes: BatchChanges(gateway: batch.gateway, receivedAt: receivedAt, outcome: outcome),
            devices: zip(plan.devices, keys.devices).map { FoldedBatch.DeviceState(name: $0, id: $1.id, maxTsBefore: $1.maxTs) },
            series: zip(keys.series, plan.seriesDevice).map { FoldedBatch.SeriesState(id: $0, deviceSlot: $1) },
            drops: batch.drops, dropSlots: plan.dropDevice)
        folded.changes.raw.reserveCapacity(batch.readings.count)
        folded.previousRaw.reserveCapacity(batch.readings.count)
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

        for (index, reading) in batch.readings.enumerated() {
            let seriesSlot = plan.readingSeries[index]
            let slot = plan.seriesDevice[seriesSlot]
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
            folded.previousRaw.append(folded.series[seriesSlot].lastRaw)
            folded.series[seriesSlot].lastRaw = folded.changes.raw.count
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
        return folded
    }

    /// The batch's changes (step 4), from the stored windows it touches and the indexes of
    /// its drop-ledger rows already stored (a resend).
    /// `storedWindows` answers ``FoldedBatch/windowLookups`` in its order (`nil`: not stored).
    public func decide(_ folded: consuming FoldedBatch, storedWindows: [WindowRecord?],
                       storedLedger: Set<Int>) throws -> BatchChanges {
        // A short answer would make stored windows look new and overwrite them.
        let lookups = folded.series.reduce(0) { $0 + $1.deltas.count }
        guard storedWindows.count == lookups else {
            throw WeirError(.storage, "the store answered \(storedWindows.count) of the batch's \(lookups) window lookups")
        }
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
        var lookup = 0
        for s in folded.series {
            let deviceID = folded.devices[s.deviceSlot].id
            for delta in s.deltas {
                let key = WindowKey(seriesID: s.id, sizeMs: delta.sizeMs, start: delta.start)
                var record: WindowRecord
                let isNew: Bool
                let stored = storedWindows[lookup]
                lookup += 1
                if let stored {
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
            let slot = folded.dropSlots[index]
            changes.edgeDrops.append(EdgeDropRow(deviceID: folded.devices[slot].id, index: index, drop: drop))
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
                // The series' rows so far, newest first along the chain: the first value of a ts wins.
                var seen: [Int64: Double] = [:]
                var i = folded.series[seriesSlot].lastRaw
                while i >= 0 {
                    seen[folded.changes.raw[i].ts] = folded.changes.raw[i].value
                    i = folded.previousRaw[i]
                }
                folded.series[seriesSlot].inBatch = seen
            }
            if let earlier = folded.series[seriesSlot].inBatch?[ts] { return earlier }
        } else {
            folded.series[seriesSlot].newestInBatch = ts
        }
        if folded.series[seriesSlot].inBatch != nil { folded.series[seriesSlot].inBatch?[ts] = value }
        return nil
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
