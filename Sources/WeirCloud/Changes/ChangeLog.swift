import Foundation
import GRDB
import WeirCompression
import WeirCore

/// The writer's side of the changefeed for the SQLite store: every batch appends the
/// windows it changed, and the windows its watermark advance closed, to `window_changes`
/// in the batch's own transaction.
///
/// One row per batch (like ``WriteBackLog``'s `window_log`, whose cost per window it avoids):
/// the row's key is the cursor of its first change, its `count` changes have the cursors
/// `key ..< key + count`, so cursors are consecutive, increase in commit order and survive
/// restarts. `data` is zstd-compressed little-endian 8-byte fields, 14 per change: series
/// id, size, start, count, sum, min, max, first ts, first value, last ts, last value,
/// revision, late, closed (0/1).
///
/// To emit closes, the log keeps each device's watermark and its open windows in memory
/// (rebuilt from the tables on open and after a failed batch, whose transaction rolled the
/// log back).
struct ChangeLog {
    static let fields = 14

    /// Set when memory may not match the database: ``load(_:writeBack:maxOutOfOrderMs:sizes:)`` first.
    var needsLoad = true
    /// The cursor the next change gets.
    var nextCursor: Int64 = 1
    /// Device id → watermark (newest ts − max_out_of_order).
    private var watermarks: [Int64: Int64] = [:]
    /// Device id → its windows not yet closed, with their current values.
    private var open: [Int64: [WindowKey: WindowRecord]] = [:]

    /// The newest committed cursor (0 before the first change).
    var latestCursor: Int64 { nextCursor - 1 }

    /// Rebuilds the in-memory state from the tables and the write-back overlay (in the
    /// writer's transaction).
    mutating func load(_ db: Database, writeBack: inout WriteBackLog, maxOutOfOrderMs moo: Int64, sizes: [Int64]) throws {
        nextCursor = try Int64.fetchOne(db, sql: "SELECT MAX(cursor + count) FROM window_changes") ?? 1
        watermarks.removeAll()
        open.removeAll()
        for row in try Row.fetchAll(db, sql: "SELECT id, max_ts FROM devices") {
            let id: Int64 = row[0]
            var maxTs: Int64? = row[1]
            if let ts = writeBack.dirtyDevices[id]?.maxTs, maxTs.map({ ts > $0 }) ?? true { maxTs = ts }
            if let maxTs { watermarks[id] = Watermark.of(newestTs: maxTs, maxOutOfOrderMs: moo) }
        }
        for row in try Row.fetchAll(db, sql: "SELECT id, device_id FROM series") {
            let seriesID: Int64 = row[0]
            let deviceID: Int64 = row[1]
            guard let watermark = watermarks[deviceID] else { continue }
            let dirty = writeBack.dirtyWindows(seriesID: seriesID)
            for size in sizes {
                let from = watermark - size + 1  // end > watermark
                let overlay = dirty.filter { $0.sizeMs == size && $0.start >= from }.sorted { $0.start < $1.start }
                for record in try SQLiteReadingStore.scanWindows(db, seriesID: seriesID, sizeMs: size, from: from, to: .max, overlay: overlay) {
                    open[deviceID, default: [:]][WindowKey(seriesID: seriesID, sizeMs: size, start: record.start)] = record
                }
            }
        }
        needsLoad = false
    }

    /// Appends the batch's changes as one row: `windows` as the reconciler saved them, with
    /// their state under the devices' new watermarks, then every window the watermark
    /// advance closed. Returns how many changes were logged.
    @discardableResult
    mutating func record(_ db: Database, windows: [WindowWrite], devices: [(Int64, WriteBackLog.DeviceChange)],
                         maxOutOfOrderMs moo: Int64, committedAt: Int64) throws -> Int {
        var newWatermarks: [Int64: Int64] = [:]
        for (id, change) in devices {
            if let ts = change.maxTs { newWatermarks[id] = max(newWatermarks[id] ?? .min, Watermark.of(newestTs: ts, maxOutOfOrderMs: moo)) }
        }
        var fields: [Int64] = []
        fields.reserveCapacity((windows.count + 16) * Self.fields)
        func put(_ key: WindowKey, _ record: WindowRecord, closed: Bool) {
            let a = record.aggregate
            fields.append(key.seriesID); fields.append(key.sizeMs); fields.append(key.start)
            fields.append(a.count); fields.append(Int64(bitPattern: a.sum.bitPattern))
            fields.append(Int64(bitPattern: a.min.bitPattern)); fields.append(Int64(bitPattern: a.max.bitPattern))
            fields.append(a.firstTs); fields.append(Int64(bitPattern: a.firstValue.bitPattern))
            fields.append(a.lastTs); fields.append(Int64(bitPattern: a.lastValue.bitPattern))
            fields.append(record.revision); fields.append(record.late); fields.append(closed ? 1 : 0)
        }
        for write in windows {
            let (device, key, record) = (write.deviceID, write.key, write.record)
            let watermark = newWatermarks[device] ?? watermarks[device]
            let closed = WindowState(end: record.end, watermark: watermark) == .closed
            put(key, record, closed: closed)
            if closed {
                open[device]?[key] = nil
            } else {
                open[device, default: [:]][key] = record
            }
        }
        for (device, watermark) in newWatermarks.sorted(by: { $0.key < $1.key }) {
            if let old = watermarks[device], old >= watermark { continue }
            watermarks[device] = watermark
            guard let windows = open[device] else { continue }
            let closing = windows.filter { WindowState.isClosed(end: $0.value.end, watermark: watermark) }.sorted { ($0.key.seriesID, $0.key.sizeMs, $0.key.start) < ($1.key.seriesID, $1.key.sizeMs, $1.key.start) }
            for (key, record) in closing {
                put(key, record, closed: true)
                open[device]?[key] = nil
            }
        }
        let count = fields.count / Self.fields
        guard count > 0 else { return 0 }
        var bytes = [UInt8](repeating: 0, count: fields.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in fields.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: i * 8, as: Int64.self) }
        }
        let packed = try Zstd.compress(bytes, level: 1)
        try db.cachedStatement(sql: "INSERT INTO window_changes (cursor, count, committed_at, data) VALUES (?, ?, ?, ?)")
            .execute(arguments: [nextCursor, count, committedAt, Data(packed)])
        nextCursor += Int64(count)
        return count
    }

    /// Decodes one `window_changes` row into (series id, record, closed) triples.
    static func decode(_ packed: Data, count: Int) throws -> [(seriesID: Int64, record: WindowRecord, closed: Bool)] {
        let data: [UInt8]
        do {
            data = try Zstd.decompress(Array(packed), maxSize: count * fields * 8 + 64)
        } catch {
            throw WeirError(.damagedFile, "window_changes row cannot be decompressed: \(error)")
        }
        guard data.count == count * fields * 8 else {
            throw WeirError(.damagedFile, "window_changes row of \(data.count) bytes does not hold its \(count) changes")
        }
        var result: [(seriesID: Int64, record: WindowRecord, closed: Bool)] = []
        result.reserveCapacity(count)
        data.withUnsafeBytes { raw in
            func int(_ i: Int) -> Int64 { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
            func double(_ i: Int) -> Double { Double(bitPattern: UInt64(bitPattern: int(i))) }
            for c in 0..<count {
                let f = c * fields
                let aggregate = WindowAggregate(count: int(f + 3), sum: double(f + 4), min: double(f + 5), max: double(f + 6),
                                                firstTs: int(f + 7), firstValue: double(f + 8), lastTs: int(f + 9), lastValue: double(f + 10))
                let record = WindowRecord(sizeMs: int(f + 1), start: int(f + 2), aggregate: aggregate, revision: int(f + 11), late: int(f + 12))
                result.append((int(f), record, int(f + 13) != 0))
            }
        }
        return result
    }
}
