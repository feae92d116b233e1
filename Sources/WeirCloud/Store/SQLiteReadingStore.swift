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
/// Writes go through GRDB's single writer, one transaction per batch: raw readings (for
/// dedup), then one ``WriteBackLog`` row with the batch's window and device changes.
/// `synchronous = FULL`: a batch answered `200` survives a power cut, not only a crash.
/// Reads (the query API) run on WAL snapshots, overlaid with the changes not yet
/// checkpointed into `windows` and `devices`.
///
/// The SQL lives here and in ``SQLiteSession``; what a batch means is ``Reconciler``'s.
/// The schema is in `SQLiteReadingStore+Schema.swift` (migrations).
public final class SQLiteReadingStore: ReadingStore {
    private let pool: DatabasePool
    /// The writer's in-memory state; also taken by readers that overlay dirty windows.
    private let state: Mutex<WriterState>
    private let settings: ReconcileSettings
    private let logger: Logger

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String, settings: ReconcileSettings, logger: Logger = Logger(label: "weir.cloud.store")) throws {
        var configuration = Configuration()
        configuration.label = "weir-cloud"
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -32768")  // 32 MiB of page cache per connection
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
        self.state = Mutex(WriterState(reconciler: Reconciler(settings: settings)))
        self.logger = logger
        // Fold windows logged before a crash into `windows` now.
        try pool.write { db in
            try self.state.withLock { state in try state.writeBack.replay(db) }
        }
    }

    struct WriterState {
        var reconciler: Reconciler
        var writeBack = WriteBackLog()
    }

    public func apply(_ batch: DecodedBatch, receivedAt: Int64) async throws -> BatchOutcome {
        do {
            return try await pool.write { db in try self.applyLocked(batch, receivedAt: receivedAt, db: db) }
        } catch {
            markSuspect()
            throw error
        }
    }

    /// Applies a batch synchronously on the calling thread (benchmarks, tools).
    public func applySync(_ batch: DecodedBatch, receivedAt: Int64) throws -> BatchOutcome {
        do {
            return try pool.write { db in try self.applyLocked(batch, receivedAt: receivedAt, db: db) }
        } catch {
            markSuspect()
            throw error
        }
    }

    /// After a failed batch or commit, nothing in memory can be trusted: forget the caches
    /// and replay the window log before the next batch.
    private func markSuspect() {
        state.withLock { state in
            state.reconciler.invalidateCaches()
            state.writeBack.needsReplay = true
        }
    }

    /// One batch inside GRDB's write transaction. If anything throws, the transaction rolls
    /// back: the caches and dirty windows learnt in it are dropped, and the next batch
    /// first rebuilds them from the committed log.
    private func applyLocked(_ batch: DecodedBatch, receivedAt: Int64, db: Database) throws -> BatchOutcome {
        try state.withLock { state in
            do {
                if state.writeBack.needsReplay { try state.writeBack.replay(db) }
                // The session owns the write-back state for the batch; swapping (not copying)
                // keeps its dictionaries uniquely referenced, so updates don't copy them.
                var session = try SQLiteSession(db, writeBack: WriteBackLog())
                swap(&session.writeBack, &state.writeBack)
                let outcome: BatchOutcome
                do {
                    outcome = try state.reconciler.apply(batch, receivedAt: receivedAt, session: &session, logger: logger)
                    try session.writeBack.logPending(db)
                    if session.writeBack.batchesSinceCheckpoint >= WriteBackLog.checkpointEvery
                        || session.writeBack.dirty.count >= WriteBackLog.checkpointDirtyLimit {
                        try session.writeBack.checkpoint(db)
                    }
                } catch {
                    swap(&session.writeBack, &state.writeBack)
                    throw error
                }
                swap(&session.writeBack, &state.writeBack)
                return outcome
            } catch {
                state.reconciler.invalidateCaches()
                state.writeBack.needsReplay = true
                throw error
            }
        }
    }

    public func devices() async throws -> [DeviceSummary] {
        try deviceSummaries(where: "", arguments: [])
    }

    public func device(named name: String) async throws -> DeviceSummary? {
        try deviceSummaries(where: "WHERE name = ?", arguments: [name]).first
    }

    /// Device rows overlaid with the changes not yet checkpointed, under the writer's lock.
    private func deviceSummaries(where clause: String, arguments: StatementArguments) throws -> [DeviceSummary] {
        let moo = settings.maxOutOfOrderMs
        return try state.withLock { state in
            try pool.read { db in
                try Row.fetchAll(db, sql: "\(Self.deviceColumns) \(clause) ORDER BY name", arguments: arguments).map { row in
                    state.writeBack.overlay(Self.summary(row, moo: moo), id: row["id"], maxOutOfOrderMs: moo)
                }
            }
        }
    }

    public func windows(device: String, metric: String, sizeMs: Int64, from: Int64, to: Int64) async throws -> [WindowRecord]? {
        // Under the writer's lock, so a checkpoint cannot move dirty windows into the table
        // between reading the table and overlaying them.
        try state.withLock { state in
            try pool.read { db in
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
                var byStart: [Int64: WindowRecord] = [:]
                while let row = try rows.next() {
                    let aggregate = WindowAggregate(count: row[1], sum: row[2], min: row[3], max: row[4],
                                                    firstTs: row[5], firstValue: row[6], lastTs: row[7], lastValue: row[8])
                    byStart[row[0]] = WindowRecord(sizeMs: sizeMs, start: row[0], aggregate: aggregate, revision: row[9], late: row[10])
                }
                for record in state.writeBack.dirtyWindows(seriesID: seriesID)
                where record.sizeMs == sizeMs && record.start >= from && record.start < to {
                    byStart[record.start] = record
                }
                return byStart.values.sorted { $0.start < $1.start }
            }
        }
    }

    public func pruneRaw() async throws -> Int {
        let retention = settings.rawRetentionMs
        do {
            return try await prune(retention: retention)
        } catch {
            markSuspect()
            throw error
        }
    }

    private func prune(retention: Int64) async throws -> Int {
        try await pool.write { db in
            // One pass over the old end of the time-first key: rows older than the newest
            // device's cutoff are candidates, each checked against its own device's cutoff.
            // Bring `devices.max_ts` up to date first: the cutoffs below are read from it.
            try self.state.withLock { state in
                if state.writeBack.needsReplay { try state.writeBack.replay(db) } else { try state.writeBack.checkpoint(db) }
            }
            guard let newest = try Int64.fetchOne(db, sql: "SELECT MAX(max_ts) FROM devices") else { return 0 }
            try db.execute(sql: """
                DELETE FROM raw WHERE ts < ? AND ts < (
                    SELECT devices.max_ts FROM series JOIN devices ON devices.id = series.device_id
                    WHERE series.id = raw.series_id) - ?
                """, arguments: [newest - retention, retention])
            return db.changesCount
        }
    }

    /// The integer a one-value query returns (diagnostics and tests).
    func rawCount(sql: String) async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    /// Lets a test watch the writer's transactions (GRDB calls `observer` on the writer).
    func observeTransactions(_ observer: some TransactionObserver) {
        pool.add(transactionObserver: observer, extent: .observerLifetime)
    }

    /// Closes the file as a crash would leave it: no checkpoint of the window log (tests).
    func closeWithoutCheckpoint() throws {
        try pool.close()
    }

    public func close() async throws {
        try await pool.write { db in
            try self.state.withLock { state in
                if state.writeBack.needsReplay { try state.writeBack.replay(db) } else { try state.writeBack.checkpoint(db) }
            }
        }
        try pool.close()
    }

    private static let deviceColumns = """
        SELECT name, last_seen, max_ts, readings, duplicates, late, conflicts, too_late, dropped_late, dropped_at_edge, id FROM devices
        """

    private static func summary(_ row: Row, moo: Int64) -> DeviceSummary {
        let maxTs: Int64? = row[2]
        return DeviceSummary(device: row[0], lastSeen: row[1], watermark: maxTs.map { $0 - moo }, readings: row[3],
                             duplicates: row[4], late: row[5], conflicts: row[6], tooLate: row[7],
                             droppedLate: row[8], droppedAtEdge: row[9])
    }
}
