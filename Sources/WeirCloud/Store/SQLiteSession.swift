import GRDB
import WeirCore

/// ``ReconcileSession`` on one SQLite write transaction. The per-reading statements are
/// prepared once per connection and bound through the C API; window writes go to the
/// ``WriteBackLog`` (one log row per batch).
struct SQLiteSession: ReconcileSession {
    let db: Database
    var writeBack: WriteBackLog
    private let insertRaw: RawStatement
    private let selectRaw: RawStatement
    private let selectWindow: RawStatement

    init(_ db: Database, writeBack: consuming WriteBackLog) throws {
        self.db = db
        self.writeBack = writeBack
        insertRaw = try RawStatement(db, sql: "INSERT OR IGNORE INTO raw (series_id, ts, value, applied) VALUES (?, ?, ?, ?)")
        selectRaw = try RawStatement(db, sql: "SELECT value FROM raw WHERE series_id = ? AND ts = ?")
        selectWindow = try RawStatement(db, sql: """
            SELECT count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late
            FROM windows WHERE series_id = ? AND size_ms = ? AND start = ?
            """)
    }

    mutating func device(named name: String) throws -> (id: Int64, maxTs: Int64?) {
        if let row = try Row.fetchOne(db, sql: "SELECT id, max_ts FROM devices WHERE name = ?", arguments: [name]) {
            let id: Int64 = row[0]
            // The row may lag behind changes not yet checkpointed.
            if let change = writeBack.dirtyDevices[id], let ts = change.maxTs { return (id, ts) }
            return (id, row[1])
        }
        try db.execute(sql: "INSERT INTO devices (name) VALUES (?)", arguments: [name])
        return (db.lastInsertedRowID, nil)
    }

    mutating func series(deviceID: Int64, metric: String) throws -> Int64 {
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM series WHERE device_id = ? AND metric = ?",
                                       arguments: [deviceID, metric]) {
            return id
        }
        try db.execute(sql: "INSERT INTO series (device_id, metric) VALUES (?, ?)", arguments: [deviceID, metric])
        return db.lastInsertedRowID
    }

    mutating func insertRaw(seriesID: Int64, ts: Int64, value: Double, applied: Bool) throws -> Double? {
        insertRaw.bind(1, seriesID)
        insertRaw.bind(2, ts)
        insertRaw.bind(3, value)
        insertRaw.bind(4, Int64(applied ? 1 : 0))
        try insertRaw.run()
        if insertRaw.changes == 1 { return nil }
        selectRaw.bind(1, seriesID)
        selectRaw.bind(2, ts)
        defer { selectRaw.reset() }
        guard try selectRaw.step() else {
            throw WeirError(.storage, "SQLite: raw reading (\(seriesID), \(ts)) neither inserted nor found")
        }
        return selectRaw.double(0)
    }

    mutating func window(_ key: WindowKey) throws -> WindowRecord? {
        if let current = writeBack.current(key) { return current }
        let s = selectWindow
        s.bind(1, key.seriesID)
        s.bind(2, key.sizeMs)
        s.bind(3, key.start)
        defer { s.reset() }
        guard try s.step() else { return nil }
        let aggregate = WindowAggregate(count: s.int64(0), sum: s.double(1), min: s.double(2), max: s.double(3),
                                        firstTs: s.int64(4), firstValue: s.double(5),
                                        lastTs: s.int64(6), lastValue: s.double(7))
        return WindowRecord(sizeMs: key.sizeMs, start: key.start, aggregate: aggregate, revision: s.int64(8), late: s.int64(9))
    }

    mutating func saveWindow(seriesID: Int64, _ record: WindowRecord, isNew: Bool) throws {
        writeBack.pending.append((WindowKey(seriesID: seriesID, sizeMs: record.sizeMs, start: record.start), record))
    }

    mutating func updateDevice(id: Int64, maxTs: Int64?, lastSeen: Int64, delta: DeviceDelta) throws {
        writeBack.pendingDevices.append((id, WriteBackLog.DeviceChange(maxTs: maxTs, lastSeen: lastSeen, delta: delta)))
    }

    mutating func recordRejected(gateway: String, batch: String, reading: RejectedReading, receivedAt: Int64) throws {
        try db.execute(sql: """
            INSERT OR IGNORE INTO rejected (gateway, batch, idx, reason, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)
            """, arguments: [gateway, batch, reading.index, reading.reason, reading.raw, receivedAt])
    }

    mutating func recordLateDrop(seriesID: Int64, ts: Int64, value: Double, watermark: Int64, receivedAt: Int64) throws {
        try db.execute(sql: """
            INSERT OR IGNORE INTO late_dropped (series_id, ts, value, watermark, received_at) VALUES (?, ?, ?, ?, ?)
            """, arguments: [seriesID, ts, value, watermark, receivedAt])
    }

    mutating func recordEdgeDrop(deviceID: Int64, drop: DropRecord, gateway: String, batch: String, index: Int, receivedAt: Int64) throws -> Bool {
        try db.execute(sql: """
            INSERT OR IGNORE INTO edge_drops (device_id, gateway, batch, idx, metric, from_ts, to_ts, count, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [deviceID, gateway, batch, index, drop.metric, drop.from, drop.to, drop.count, receivedAt])
        return db.changesCount == 1
    }

    mutating func recordBatch(gateway: String, outcome: BatchOutcome, receivedAt: Int64) throws {
        try db.execute(sql: """
            INSERT INTO batches (gateway, batch, first_received_at, last_received_at, received, accepted, duplicates, late, conflicts)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (gateway, batch) DO UPDATE SET last_received_at = excluded.last_received_at,
                deliveries = deliveries + 1
            """, arguments: [gateway, outcome.batch, receivedAt, receivedAt, outcome.received, outcome.accepted,
                             outcome.duplicates, outcome.late, outcome.conflicts])
    }
}
