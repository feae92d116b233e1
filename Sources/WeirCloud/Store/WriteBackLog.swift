import Foundation
import GRDB
import WeirCompression
import WeirCore

/// Write-back of window rows and device counters for the SQLite store.
///
/// A batch of 10k readings from thousands of series changes thousands of windows and
/// hundreds of device rows; updating each row costs a statement and a B-tree seek, which
/// measured 35–40% (windows) and 5–10% (devices) of ingest time. Instead, each batch
/// appends **one** row to `window_log` holding every window it changed (its new value) and
/// every device change (new watermark and last-seen time, counter increments), in the same
/// transaction as its raw readings, and keeps the current values in memory (`dirty`,
/// `dirtyDevices`). Every `checkpointEvery` batches (and on close) these are written to
/// `windows` and `devices` and the log is emptied, in one transaction.
///
/// Durability is unchanged: a committed batch's changes are in its log row. On open the log
/// is replayed and folded; after a failed batch (whose transaction rolled back, leaving
/// memory unreliable) the dirty maps are reloaded from the log (a read, so it works on a
/// full disk too). Readers see the tables overlaid with the dirty values. The store changes
/// these maps and commits under one lock that readers take around their snapshot (see
/// ``SQLiteReadingStore``), so the overlay a reader gets always belongs to the committed
/// state its snapshot shows: a fold empties the maps and fills the tables in one step.
///
/// Log rows are zstd-compressed little-endian 8-byte fields: the window count, 13 fields
/// per window, then 10 fields per device change.
struct WriteBackLog {
    /// A device's changes since the last checkpoint.
    struct DeviceChange {
        var maxTs: Int64?
        var lastSeen: Int64
        var delta: DeviceDelta

        mutating func merge(_ newer: DeviceChange) {
            if let ts = newer.maxTs, maxTs.map({ ts > $0 }) ?? true { maxTs = ts }
            lastSeen = max(lastSeen, newer.lastSeen)
            delta.addCounters(of: newer.delta)
        }
    }

    /// Current values of windows changed since the last checkpoint.
    var dirty: [WindowKey: WindowRecord] = [:]
    /// Device changes since the last checkpoint, by device id.
    var dirtyDevices: [Int64: DeviceChange] = [:]
    /// Changes of the batch in progress (moved into the dirty maps when it is logged).
    var pending: [(WindowKey, WindowRecord)] = []
    var pendingDevices: [(Int64, DeviceChange)] = []
    var batchesSinceCheckpoint = 0
    /// Fold after this many logged batches (``checkpointEvery`` unless a test or benchmark
    /// chooses another).
    let foldEvery: Int
    /// `dirty`'s keys grouped by series, built when a query needs it and dropped whenever
    /// `dirty` changes (so ingest pays nothing for it).
    private var dirtyBySeries: [Int64: [WindowKey]]?
    /// Set when memory may not match the database (a failed batch): replay the log first.
    var needsReplay = true

    static let checkpointEvery = 64
    static let checkpointDirtyLimit = 200_000
    static let windowFields = 13
    static let deviceFields = 10

    /// `WEIR_CLOUD_WINDOW_WRITEBACK=0` writes every change straight to the tables instead
    /// (for comparing the two in benchmarks).
    static let enabled = ProcessInfo.processInfo.environment["WEIR_CLOUD_WINDOW_WRITEBACK"] != "0"

    init(foldEvery: Int = WriteBackLog.checkpointEvery) {
        self.foldEvery = max(1, foldEvery)
    }

    /// Whether the batch just logged should be followed by a fold.
    var foldDue: Bool {
        batchesSinceCheckpoint >= foldEvery || dirty.count >= Self.checkpointDirtyLimit
    }

    /// The window's current value if it changed since the last checkpoint.
    func current(_ key: WindowKey) -> WindowRecord? {
        dirty[key]
    }

    /// The dirty windows of one series (for overlaying query results).
    mutating func dirtyWindows(seriesID: Int64) -> [WindowRecord] {
        if dirtyBySeries == nil {
            var index: [Int64: [WindowKey]] = [:]
            for key in dirty.keys { index[key.seriesID, default: []].append(key) }
            dirtyBySeries = index
        }
        return (dirtyBySeries?[seriesID] ?? []).compactMap { dirty[$0] }
    }

    /// Writes the batch's changes as one log row.
    mutating func logPending(_ db: Database) throws {
        guard !pending.isEmpty || !pendingDevices.isEmpty else { return }
        if !Self.enabled {
            let windows = try Self.windowUpsert(db)
            for (key, record) in pending { try Self.write(windows, key, record) }
            let devices = try Self.deviceUpdate(db)
            for (id, change) in pendingDevices { try Self.write(devices, id, change) }
            pending.removeAll(keepingCapacity: true)
            pendingDevices.removeAll(keepingCapacity: true)
            return
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + pending.count * Self.windowFields * 8 + pendingDevices.count * Self.deviceFields * 8)
        func put(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        func put(_ v: Double) { put(Int64(bitPattern: v.bitPattern)) }
        put(Int64(pending.count))
        for (key, record) in pending {
            let a = record.aggregate
            put(key.seriesID); put(key.sizeMs); put(key.start)
            put(a.count); put(a.sum); put(a.min); put(a.max)
            put(a.firstTs); put(a.firstValue); put(a.lastTs); put(a.lastValue)
            put(record.revision); put(record.late)
        }
        for (id, change) in pendingDevices {
            let d = change.delta
            put(id); put(change.maxTs ?? Int64.min); put(change.lastSeen)
            put(d.readings); put(d.duplicates); put(d.late); put(d.conflicts); put(d.tooLate); put(d.droppedLate); put(d.droppedAtEdge)
        }
        // zstd (level 1) makes the row a quarter of the size; writing less WAL costs less than compressing.
        let packed = try Zstd.compress(bytes, level: 1)
        try db.cachedStatement(sql: "INSERT INTO window_log (data) VALUES (?)").execute(arguments: [Data(packed)])
        for (key, record) in pending { dirty[key] = record }
        dirtyBySeries = nil
        for (id, change) in pendingDevices { record(id, change) }
        pending.removeAll(keepingCapacity: true)
        pendingDevices.removeAll(keepingCapacity: true)
        batchesSinceCheckpoint += 1
    }

    private mutating func record(_ id: Int64, _ change: DeviceChange) {
        if var existing = dirtyDevices[id] {
            existing.merge(change)
            dirtyDevices[id] = existing
        } else {
            dirtyDevices[id] = change
        }
    }

    /// Writes every dirty window and device to its table and empties the log.
    mutating func checkpoint(_ db: Database) throws {
        if !dirty.isEmpty {
            let upsert = try Self.windowUpsert(db)
            for (key, record) in dirty { try Self.write(upsert, key, record) }
        }
        if !dirtyDevices.isEmpty {
            let update = try Self.deviceUpdate(db)
            for (id, change) in dirtyDevices { try Self.write(update, id, change) }
        }
        try db.execute(sql: "DELETE FROM window_log")
        dirty.removeAll(keepingCapacity: true)
        dirtyBySeries = nil
        dirtyDevices.removeAll(keepingCapacity: true)
        batchesSinceCheckpoint = 0
    }

    /// Rebuilds the dirty maps from the log as `db` sees it (in order: a window's latest
    /// value wins, device counter increments add up), without writing anything. Called
    /// before the first batch, after a failed transaction, and by a reader that finds the
    /// maps unreliable.
    mutating func load(_ db: Database) throws {
        dirty.removeAll()
        dirtyBySeries = nil
        dirtyDevices.removeAll()
        pending.removeAll()
        pendingDevices.removeAll()
        batchesSinceCheckpoint = 0
        needsReplay = true
        let rows = try Row.fetchCursor(db, sql: "SELECT data FROM window_log ORDER BY seq")
        while let row = try rows.next() {
            let packed: Data = row[0]
            let data: [UInt8]
            do {
                data = try Zstd.decompress(Array(packed), maxSize: 1 << 30)
            } catch {
                throw WeirError(.damagedFile, "window_log row cannot be decompressed: \(error)")
            }
            try decode(data)
            batchesSinceCheckpoint += 1
        }
        needsReplay = false
    }

    private mutating func decode(_ data: [UInt8]) throws {
        let damaged = WeirError(.damagedFile, "window_log row of \(data.count) bytes does not hold whole records")
        guard data.count >= 8 else { throw damaged }
        var fields = [Int64](repeating: 0, count: data.count / 8)
        guard data.count % 8 == 0 else { throw damaged }
        data.withUnsafeBytes { raw in
            for i in 0..<fields.count {
                fields[i] = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
            }
        }
        let windowCount = Int(fields[0])
        guard windowCount >= 0, 1 + windowCount * Self.windowFields <= fields.count,
              (fields.count - 1 - windowCount * Self.windowFields) % Self.deviceFields == 0 else { throw damaged }
        func double(_ i: Int) -> Double { Double(bitPattern: UInt64(bitPattern: fields[i])) }
        var i = 1
        for _ in 0..<windowCount {
            let key = WindowKey(seriesID: fields[i], sizeMs: fields[i + 1], start: fields[i + 2])
            let aggregate = WindowAggregate(count: fields[i + 3], sum: double(i + 4), min: double(i + 5), max: double(i + 6),
                                            firstTs: fields[i + 7], firstValue: double(i + 8),
                                            lastTs: fields[i + 9], lastValue: double(i + 10))
            dirty[key] = WindowRecord(sizeMs: key.sizeMs, start: key.start, aggregate: aggregate,
                                      revision: fields[i + 11], late: fields[i + 12])
            i += Self.windowFields
        }
        while i < fields.count {
            var delta = DeviceDelta()
            delta.readings = fields[i + 3]
            delta.duplicates = fields[i + 4]
            delta.late = fields[i + 5]
            delta.conflicts = fields[i + 6]
            delta.tooLate = fields[i + 7]
            delta.droppedLate = fields[i + 8]
            delta.droppedAtEdge = fields[i + 9]
            let maxTs = fields[i + 1] == Int64.min ? nil : fields[i + 1]
            record(fields[i], DeviceChange(maxTs: maxTs, lastSeen: fields[i + 2], delta: delta))
            i += Self.deviceFields
        }
    }

    static func windowUpsert(_ db: Database) throws -> RawStatement {
        try RawStatement(db, sql: """
            INSERT OR REPLACE INTO windows
                (series_id, size_ms, start, count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
    }

    static func deviceUpdate(_ db: Database) throws -> RawStatement {
        try RawStatement(db, sql: """
            UPDATE devices SET max_ts = ?, last_seen = ?, readings = readings + ?, duplicates = duplicates + ?,
                late = late + ?, conflicts = conflicts + ?, too_late = too_late + ?, dropped_late = dropped_late + ?,
                dropped_at_edge = dropped_at_edge + ?
            WHERE id = ?
            """)
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

    static func write(_ s: RawStatement, _ id: Int64, _ change: DeviceChange) throws {
        let d = change.delta
        s.bind(1, change.maxTs)
        s.bind(2, change.lastSeen)
        s.bind(3, d.readings)
        s.bind(4, d.duplicates)
        s.bind(5, d.late)
        s.bind(6, d.conflicts)
        s.bind(7, d.tooLate)
        s.bind(8, d.droppedLate)
        s.bind(9, d.droppedAtEdge)
        s.bind(10, id)
        try s.run()
    }

    /// `summary` with this device's changes since the last checkpoint applied.
    func overlay(_ summary: DeviceSummary, id: Int64, maxOutOfOrderMs: Int64) -> DeviceSummary {
        guard let change = dirtyDevices[id] else { return summary }
        var s = summary
        if let ts = change.maxTs { s.watermark = Watermark.of(newestTs: ts, maxOutOfOrderMs: maxOutOfOrderMs) }
        s.lastSeen = max(s.lastSeen ?? Int64.min, change.lastSeen)
        s.addCounters(of: change.delta)
        return s
    }
}
