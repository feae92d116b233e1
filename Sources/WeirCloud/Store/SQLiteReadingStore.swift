import Foundation
import GRDB
import Logging
import Synchronization
import WeirCore

/// The embedded store: one SQLite file in WAL mode through GRDB (`--store sqlite:PATH`).
///
/// ```swift
/// let store = try SQLiteReadingStore(path: "weir-cloud.db", settings: ReconcileSettings(config))
/// let outcome = try await store.apply(decoded, receivedAt: nowMs)
/// ```
///
/// Writes go through GRDB's single writer, one transaction per batch; reads (the query API)
/// run concurrently on WAL snapshots. `synchronous = FULL`: a batch answered `200` survives
/// a power cut, not only a crash.
public final class SQLiteReadingStore: ReadingStore {
    private let pool: DatabasePool
    private let reconciler: Mutex<Reconciler>
    private let settings: ReconcileSettings
    private let logger: Logger

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String, settings: ReconcileSettings, logger: Logger = Logger(label: "weir.cloud.store")) throws {
        var configuration = Configuration()
        configuration.label = "weir-cloud"
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -65536")  // 64 MiB of page cache per connection
        }
        do {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            if !FileManager.default.fileExists(atPath: directory) {
                throw WeirError(.storage, "the directory \(directory) of store file \(path) does not exist")
            }
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch let error as WeirError {
            throw error
        } catch {
            throw WeirError(.storage, "cannot open store sqlite:\(path): \(error)")
        }
        self.settings = settings
        self.reconciler = Mutex(Reconciler(settings: settings))
        self.logger = logger
    }

    public func apply(_ batch: DecodedBatch, receivedAt: Int64) async throws -> BatchOutcome {
        let logger = self.logger
        return try await pool.write { db in
            try self.reconciler.withLock { reconciler in
                do {
                    var session = try SQLiteSession(db)
                    return try reconciler.apply(batch, receivedAt: receivedAt, session: &session, logger: logger)
                } catch {
                    // The transaction rolls back: forget what the caches learnt in it.
                    reconciler.invalidateCaches()
                    throw error
                }
            }
        }
    }

    /// Applies a batch synchronously on the calling thread (benchmarks, tools).
    public func applySync(_ batch: DecodedBatch, receivedAt: Int64) throws -> BatchOutcome {
        try pool.write { db in
            try self.reconciler.withLock { reconciler in
                do {
                    var session = try SQLiteSession(db)
                    return try reconciler.apply(batch, receivedAt: receivedAt, session: &session, logger: logger)
                } catch {
                    reconciler.invalidateCaches()
                    throw error
                }
            }
        }
    }

    public func devices() async throws -> [DeviceSummary] {
        let moo = settings.maxOutOfOrderMs
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "\(Self.deviceColumns) ORDER BY name").map { Self.summary($0, moo: moo) }
        }
    }

    public func device(named name: String) async throws -> DeviceSummary? {
        let moo = settings.maxOutOfOrderMs
        return try await pool.read { db in
            try Row.fetchOne(db, sql: "\(Self.deviceColumns) WHERE name = ?", arguments: [name]).map { Self.summary($0, moo: moo) }
        }
    }

    public func windows(device: String, metric: String, sizeMs: Int64, from: Int64, to: Int64) async throws -> [WindowRecord]? {
        try await pool.read { db in
            guard let deviceID = try Int64.fetchOne(db, sql: "SELECT id FROM devices WHERE name = ?", arguments: [device]) else {
                return nil
            }
            guard let seriesID = try Int64.fetchOne(db, sql: "SELECT id FROM series WHERE device_id = ? AND metric = ?",
                                                    arguments: [deviceID, metric]) else {
                return []
            }
            let rows = try Row.fetchCursor(db, sql: """
                SELECT start, count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late
                FROM windows WHERE series_id = ? AND size_ms = ? AND start >= ? AND start < ? ORDER BY start
                """, arguments: [seriesID, sizeMs, from, to])
            var out: [WindowRecord] = []
            while let row = try rows.next() {
                let aggregate = WindowAggregate(count: row[1], sum: row[2], min: row[3], max: row[4],
                                                firstTs: row[5], firstValue: row[6], lastTs: row[7], lastValue: row[8])
                out.append(WindowRecord(sizeMs: sizeMs, start: row[0], aggregate: aggregate, revision: row[9], late: row[10]))
            }
            return out
        }
    }

    public func pruneRaw() async throws -> Int {
        let retention = settings.rawRetentionMs
        return try await pool.write { db in
            // Per series, so the delete walks the (series_id, ts) key instead of the table.
            let cutoffs = try Row.fetchAll(db, sql: """
                SELECT series.id, devices.max_ts FROM series JOIN devices ON devices.id = series.device_id
                WHERE devices.max_ts IS NOT NULL
                """)
            var deleted = 0
            for row in cutoffs {
                let seriesID: Int64 = row[0]
                let maxTs: Int64 = row[1]
                try db.execute(sql: "DELETE FROM raw WHERE series_id = ? AND ts < ?", arguments: [seriesID, maxTs - retention])
                deleted += db.changesCount
            }
            return deleted
        }
    }

    /// The integer a one-value query returns (diagnostics and tests).
    func rawCount(sql: String) async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    public func close() async throws {
        try pool.close()
    }

    private static let deviceColumns = """
        SELECT name, last_seen, max_ts, readings, duplicates, late, conflicts, too_late, dropped_late, dropped_at_edge FROM devices
        """

    private static func summary(_ row: Row, moo: Int64) -> DeviceSummary {
        let maxTs: Int64? = row[2]
        return DeviceSummary(device: row[0], lastSeen: row[1], watermark: maxTs.map { $0 - moo }, readings: row[3],
                             duplicates: row[4], late: row[5], conflicts: row[6], tooLate: row[7],
                             droppedLate: row[8], droppedAtEdge: row[9])
    }
}
