import Foundation
import GRDB
import WeirCore

/// Write-back of window rows for the SQLite store. A batch of 10k readings from thousands
/// of series changes thousands of windows; updating each row costs a statement and a
/// B-tree seek, which measured 35–40% of ingest time. Instead, each batch appends **one**
/// log row (`window_log`) holding every window it changed, in the same transaction as its
/// readings, and keeps the windows' current values in memory (`dirty`). Every
/// `checkpointEvery` batches (and on close) the dirty windows are written to `windows` and
/// the log emptied, also in one transaction.
///
/// Durability is unchanged: a committed batch's windows are in its log row. On open, and
/// after a failed batch (whose transaction rolled back, leaving `dirty` unreliable), the log
/// is replayed into `windows` before anything else. Readers see `windows` overlaid with
/// `dirty` (under the same lock the writer holds, so they never see half a checkpoint).
struct WindowWriteBack {
    /// Current values of windows changed since the last checkpoint.
    var dirty: [WindowKey: WindowRecord] = [:]
    /// Windows changed by the batch in progress (moved into `dirty` when it succeeds).
    var pending: [(WindowKey, WindowRecord)] = []
    var batchesSinceCheckpoint = 0
    /// Set when `dirty` may not match the database (a failed batch): replay the log first.
    var needsReplay = true

    static let checkpointEvery = 64
    static let checkpointDirtyLimit = 200_000
    /// Bytes per logged window: 13 little-endian 8-byte fields.
    static let recordBytes = 13 * 8

    /// The window's current value if it changed since the last checkpoint.
    func current(_ key: WindowKey) -> WindowRecord? {
        dirty[key]
    }

    /// `WEIR_CLOUD_WINDOW_WRITEBACK=0` writes every changed window straight to `windows`
    /// instead (for comparing the two in benchmarks).
    static let enabled = ProcessInfo.processInfo.environment["WEIR_CLOUD_WINDOW_WRITEBACK"] != "0"

    /// Writes the batch's changed windows as one log row.
    mutating func logPending(_ db: Database) throws {
        guard !pending.isEmpty else { return }
        if !Self.enabled {
            let upsert = try RawStatement(db, sql: """
                INSERT OR REPLACE INTO windows
                    (series_id, size_ms, start, count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for (key, record) in pending { try Self.write(upsert, key, record) }
            pending.removeAll(keepingCapacity: true)
            return
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(pending.count * Self.recordBytes)
        func put(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        func put(_ v: Double) { put(Int64(bitPattern: v.bitPattern)) }
        for (key, record) in pending {
            let a = record.aggregate
            put(key.seriesID); put(key.sizeMs); put(key.start)
            put(a.count); put(a.sum); put(a.min); put(a.max)
            put(a.firstTs); put(a.firstValue); put(a.lastTs); put(a.lastValue)
            put(record.revision); put(record.late)
        }
        try db.execute(sql: "INSERT INTO window_log (data) VALUES (?)", arguments: [Data(bytes)])
        for (key, record) in pending { dirty[key] = record }
        pending.removeAll(keepingCapacity: true)
        batchesSinceCheckpoint += 1
    }

    /// Writes every dirty window to `windows` and empties the log.
    mutating func checkpoint(_ db: Database) throws {
        if !dirty.isEmpty {
            let upsert = try RawStatement(db, sql: """
                INSERT OR REPLACE INTO windows
                    (series_id, size_ms, start, count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for (key, record) in dirty {
                try Self.write(upsert, key, record)
            }
        }
        try db.execute(sql: "DELETE FROM window_log")
        dirty.removeAll(keepingCapacity: true)
        batchesSinceCheckpoint = 0
    }

    /// Applies the log to `windows` (in order, so the latest value of a window wins), then
    /// empties it. Called on open and after a failed batch.
    mutating func replay(_ db: Database) throws {
        dirty.removeAll()
        pending.removeAll()
        let rows = try Row.fetchCursor(db, sql: "SELECT data FROM window_log ORDER BY seq")
        while let row = try rows.next() {
            let data: Data = row[0]
            guard data.count % Self.recordBytes == 0 else {
                throw WeirError(.damagedFile, "window_log row of \(data.count) bytes is not a whole number of windows")
            }
            data.withUnsafeBytes { raw in
                var offset = 0
                func get() -> Int64 {
                    let v = raw.loadUnaligned(fromByteOffset: offset, as: Int64.self)
                    offset += 8
                    return Int64(littleEndian: v)
                }
                func getDouble() -> Double { Double(bitPattern: UInt64(bitPattern: get())) }
                while offset < raw.count {
                    let key = WindowKey(seriesID: get(), sizeMs: get(), start: get())
                    let aggregate = WindowAggregate(count: get(), sum: getDouble(), min: getDouble(), max: getDouble(),
                                                    firstTs: get(), firstValue: getDouble(), lastTs: get(), lastValue: getDouble())
                    let record = WindowRecord(sizeMs: key.sizeMs, start: key.start, aggregate: aggregate, revision: get(), late: get())
                    dirty[key] = record
                }
            }
        }
        try checkpoint(db)
        needsReplay = false
    }

    static func write(_ s: RawStatement, _ key: WindowKey, _ record: WindowRecord) throws {
        let a = record.aggregate
        s.bind(1, key.seriesID)
        s.bind(2, key.sizeMs)
        s.bind(3, key.start)
        s.bind(4, a.count)
        s.bind(5, a.sum)
        s.bind(6, a.min)
        s.bind(7, a.max)
        s.bind(8, a.firstTs)
        s.bind(9, a.firstValue)
        s.bind(10, a.lastTs)
        s.bind(11, a.lastValue)
        s.bind(12, record.revision)
        s.bind(13, record.late)
        try s.run()
    }
}
