import GRDB
import WeirCore

/// The loads and the commit of one batch on SQLite, inside the writer's transaction (see
/// ``Reconciler`` for the steps). Per-reading statements are prepared once per batch and
/// bound through the C API; window and device writes go to the ``WriteBackLog`` (one log
/// row per batch).
struct SQLiteSession {
    let db: Database

    /// Device and series keys known to be stored. SQLite has one writer (this process), so
    /// they stay valid across batches; the store drops them when a transaction fails.
    struct KeyCache {
        struct Device {
            var stored: StoredDevice
            /// The device's series: metric and key (a device has few: a scan beats a hash).
            var series: [(metric: String, id: Int64)] = []
        }

        var devices: [String: Device] = [:]

        mutating func removeAll() {
            devices.removeAll()
        }

        /// Moves a cached device's newest ts (after its batch committed).
        mutating func advance(_ name: String, maxTs: Int64) {
            devices[name]?.stored.maxTs = maxTs
        }
    }

    init(_ db: Database) {
        self.db = db
    }

    /// The batch's device and series keys, creating new ones.
    func loadKeys(_ plan: BatchPlan, cache: inout KeyCache, writeBack: WriteBackLog) throws -> BatchKeys {
        var keys = BatchKeys()
        keys.devices.reserveCapacity(plan.devices.count)
        var cached: [KeyCache.Device?] = []
        cached.reserveCapacity(plan.devices.count)
        for name in plan.devices {
            if let device = cache.devices[name] {
                keys.devices.append(device.stored)
                cached.append(device)
                continue
            }
            let device: StoredDevice
            if let row = try Row.fetchOne(db, sql: "SELECT id, max_ts FROM devices WHERE name = ?", arguments: [name]) {
                let id: Int64 = row[0]
                // The row may lag behind changes not yet folded.
                device = StoredDevice(id: id, maxTs: writeBack.dirtyDevices[id]?.maxTs ?? row[1])
            } else {
                try db.execute(sql: "INSERT INTO devices (name) VALUES (?)", arguments: [name])
                device = StoredDevice(id: db.lastInsertedRowID, maxTs: nil)
            }
            cache.devices[name] = KeyCache.Device(stored: device)
            keys.devices.append(device)
            cached.append(nil)
        }
        keys.series.reserveCapacity(plan.series.count)
        for (index, name) in plan.series.enumerated() {
            let slot = plan.seriesDevice[index]
            if let id = cached[slot]?.series.first(where: { $0.metric == name.metric })?.id {
                keys.series.append(id)
                continue
            }
            let deviceID = keys.devices[slot].id
            let id: Int64
            if let stored = try Int64.fetchOne(db, sql: "SELECT id FROM series WHERE device_id = ? AND metric = ?",
                                               arguments: [deviceID, name.metric]) {
                id = stored
            } else {
                try db.execute(sql: "INSERT INTO series (device_id, metric) VALUES (?, ?)", arguments: [deviceID, name.metric])
                id = db.lastInsertedRowID
            }
            cache.devices[name.device]?.series.append((name.metric, id))
            keys.series.append(id)
        }
        return keys
    }

    /// The stored values of those of `lookups` that are stored.
    func loadRaw(_ lookups: [(deviceID: Int64, key: RawKey)]) throws -> [RawKey: Double] {
        guard !lookups.isEmpty else { return [:] }
        let select = try RawStatement(db, sql: "SELECT value FROM raw WHERE ts = ? AND series_id = ?")
        var found: [RawKey: Double] = [:]
        for (_, key) in lookups {
            select.bind(1, key.ts)
            select.bind(2, key.seriesID)
            if try select.step() { found[key] = select.double(0) }
            select.reset()
        }
        return found
    }

    /// The stored windows among `lookups`, in their order (`nil`: not stored), changes not
    /// yet folded included.
    func loadWindows(_ lookups: [(deviceID: Int64, key: WindowKey)], writeBack: WriteBackLog) throws -> [WindowRecord?] {
        var found: [WindowRecord?] = []
        found.reserveCapacity(lookups.count)
        var select: RawStatement?
        for (_, key) in lookups {
            if let current = writeBack.current(key) {
                found.append(current)
                continue
            }
            if select == nil {
                select = try RawStatement(db, sql: """
                    SELECT count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late
                    FROM windows WHERE series_id = ? AND size_ms = ? AND start = ?
                    """)
            }
            guard let s = select else {
                found.append(nil)
                continue
            }
            s.bind(1, key.seriesID)
            s.bind(2, key.sizeMs)
            s.bind(3, key.start)
            defer { s.reset() }
            guard try s.step() else {
                found.append(nil)
                continue
            }
            let aggregate = WindowAggregate(count: s.int64(0), sum: s.double(1), min: s.double(2), max: s.double(3),
                                            firstTs: s.int64(4), firstValue: s.double(5),
                                            lastTs: s.int64(6), lastValue: s.double(7))
            found.append(WindowRecord(sizeMs: key.sizeMs, start: key.start, aggregate: aggregate,
                                      revision: s.int64(8), late: s.int64(9)))
        }
        return found
    }

    /// Indexes of the batch's drop-ledger rows stored before (a resend).
    func loadLedger(_ batch: Batch, plan: BatchPlan, keys: BatchKeys) throws -> Set<Int> {
        var stored = Set<Int>()
        for index in batch.drops.indices {
            let deviceID = keys.devices[plan.dropDevice[index]].id
            if try Bool.fetchOne(db, sql: """
                SELECT 1 FROM edge_drops WHERE device_id = ? AND gateway = ? AND batch = ? AND idx = ?
                """, arguments: [deviceID, batch.gateway, batch.id, index]) == true {
                stored.insert(index)
            }
        }
        return stored
    }

    /// Writes the batch's changes: raw readings and audit rows into their tables, windows
    /// and device changes into the write-back log (the caller logs it), the batch record.
    func commit(_ changes: BatchChanges, writeBack: inout WriteBackLog) throws {
        if !changes.raw.isEmpty {
            let insert = try RawStatement(db, sql: "INSERT INTO raw (series_id, ts, value, applied) VALUES (?, ?, ?, ?)")
            for row in changes.raw {
                insert.bind(1, row.seriesID)
                insert.bind(2, row.ts)
                insert.bind(3, row.value)
                insert.bind(4, Int64(row.applied ? 1 : 0))
                try insert.run()
            }
        }
        for row in changes.lateDrops {
            try db.execute(sql: """
                INSERT OR IGNORE INTO late_dropped (series_id, ts, value, watermark, received_at) VALUES (?, ?, ?, ?, ?)
                """, arguments: [row.seriesID, row.ts, row.value, row.watermark, changes.receivedAt])
        }
        for row in changes.edgeDrops {
            let drop = row.drop
            try db.execute(sql: """
                INSERT OR IGNORE INTO edge_drops (device_id, gateway, batch, idx, metric, from_ts, to_ts, count, received_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [row.deviceID, changes.gateway, changes.outcome.batch, row.index, drop.metric,
                                 drop.from, drop.to, drop.count, changes.receivedAt])
        }
        for reading in changes.rejectedRows {
            try db.execute(sql: """
                INSERT OR IGNORE INTO rejected (gateway, batch, idx, reason, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [changes.gateway, changes.outcome.batch, reading.index, reading.reason, reading.raw,
                                 changes.receivedAt])
        }
        for write in changes.windows { writeBack.pending.append((write.key, write.record)) }
        for device in changes.devices {
            writeBack.pendingDevices.append((device.id, WriteBackLog.DeviceChange(maxTs: device.maxTs, lastSeen: device.lastSeen,
                                                                                 delta: device.delta)))
        }
        let outcome = changes.outcome
        // Cached: compiled once per connection, not once per batch.
        try db.cachedStatement(sql: """
            INSERT INTO batches (gateway, batch, first_received_at, last_received_at, received, accepted, duplicates, late, conflicts)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (gateway, batch) DO UPDATE SET last_received_at = excluded.last_received_at,
                deliveries = deliveries + 1
            """).execute(arguments: [changes.gateway, outcome.batch, changes.receivedAt, changes.receivedAt, outcome.received,
                                     outcome.accepted, outcome.duplicates, outcome.late, outcome.conflicts])
    }
}
