import Foundation
import GRDB
import Logging
import Synchronization
import WeirCore
import WeirSupport

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
/// folded into `windows` and `devices`.
///
/// **Read-after-write.** The overlay lives in memory, the folded rows in the file; a reader
/// must get both of the same committed state. So the writer holds the state lock from
/// `BEGIN` to `COMMIT` (or `ROLLBACK`), and a reader takes its snapshot and the overlay
/// under the same lock. (Issue 12: the lock used to be released when the batch's work was
/// done, before GRDB committed. A fold — every 64th batch, or the retention pruner's — had
/// emptied the overlay by then and its rows were not visible yet, so a query in that gap,
/// which the pruner's fold plus its raw scan made long, answered the windows of the last
/// fold interval as missing; a non-folding batch's overlay was visible before its commit.)
///
/// The SQL lives here and in ``SQLiteSession``; what a batch means is ``Reconciler``'s.
/// The schema is in `SQLiteReadingStore+Schema.swift` (migrations).
public final class SQLiteReadingStore: ReadingStore {
    private let pool: DatabasePool
    /// The writer's in-memory state; also taken by readers that overlay dirty windows.
    private let state: Mutex<WriterState>
    /// Commits (and rollbacks) so far, counted under `state`'s lock; see ``read(locked:unlocked:)``.
    private let commits = Atomic<UInt64>(0)
    /// The changefeed's notifier and name cache (see `SQLiteReadingStore+Changes.swift`).
    let feed = ChangeFeedState()
    /// How long changefeed rows are kept (wall clock since their commit).
    let changesRetentionMs: Int64
    /// Commit and fold outcomes for `/healthz`, apart from `state` so health never waits on a commit.
    private let healthRecord: Mutex<StoreHealthRecord>
    let settings: ReconcileSettings
    private let reconciler: Reconciler
    private let logger: Logger

    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// - Parameters:
    ///   - foldEvery: fold the write-back log into the window tables after this many batches
    ///     (64 by default, `WriteBackLog.checkpointEvery`).
    ///   - maxUnfoldedAge: `/healthz` reports `fold_behind` when a batch waits longer than
    ///     this to be folded (the retention pruner folds an idle store on every tick).
    public init(path: String, settings: ReconcileSettings, logger: Logger = Logger(label: "weir.cloud.store"),
                foldEvery: Int = 64, maxUnfoldedAge: Duration = .seconds(300),
                changesRetention: Duration = .seconds(7 * 86_400)) throws {
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
        self.changesRetentionMs = changesRetention.milliseconds
        let writeBack = WriteBackLog(foldEvery: foldEvery)
        self.reconciler = Reconciler(settings: settings)
        self.state = Mutex(WriterState(writeBack: writeBack))
        self.healthRecord = Mutex(StoreHealthRecord(maxUnfoldedBatches: 2 * writeBack.foldEvery,
                                                    maxUnfoldedAgeMs: maxUnfoldedAge.milliseconds))
        self.logger = logger
        // Fold windows logged before a crash into `windows` now.
        try pool.writeWithoutTransaction { db in
            try self.transaction(db) { db, state in try self.fold(db, &state) }
        }
    }

    struct WriterState {
        var keys = SQLiteSession.KeyCache()
        var writeBack: WriteBackLog
        /// The changefeed's writer side, logged in each batch's transaction.
        var changes = ChangeLog()
    }

    public func apply(_ batch: DecodedBatch, receivedAt: Int64) async throws -> BatchOutcome {
        try await pool.writeWithoutTransaction { db in
            try self.transaction(db) { db, state in try self.apply(batch, receivedAt: receivedAt, db: db, state: &state) }
        }
    }

    /// Applies a batch synchronously on the calling thread (benchmarks, tools).
    public func applySync(_ batch: DecodedBatch, receivedAt: Int64) throws -> BatchOutcome {
        try pool.writeWithoutTransaction { db in
            try self.transaction(db) { db, state in try self.apply(batch, receivedAt: receivedAt, db: db, state: &state) }
        }
    }

    /// Runs `body` in one write transaction on the writer connection `db`, holding the state
    /// lock until it has committed or rolled back (see "Read-after-write" above).
    ///
    /// If anything fails, the transaction rolls back: the cached keys are dropped and
    /// the overlay is reloaded from the committed log at once (a read, so it works on a full
    /// disk), so readers go on answering exactly what is committed.
    private func transaction<T: Sendable>(_ db: Database, _ body: (Database, inout WriterState) throws -> T) throws -> T {
        try state.withLock { state in
            defer { commits.add(1, ordering: .releasing) }
            do {
                var result: T?
                try db.inTransaction(.immediate) {
                    if state.writeBack.needsReplay { try state.writeBack.load(db) }
                    if state.changes.needsLoad {
                        try state.changes.load(db, writeBack: &state.writeBack, maxOutOfOrderMs: settings.maxOutOfOrderMs,
                                               sizes: settings.windowSizesMs)
                    }
                    result = try body(db, &state)
                    return .commit
                }
                feed.notifier.advance(to: state.changes.latestCursor)
                if state.writeBack.foldDue { foldAfterCommit(db, &state) }
                let unfolded = state.writeBack.batchesSinceCheckpoint
                healthRecord.withLock { $0.committed(at: WallClock.nowMs(), unfoldedBatches: unfolded) }
                guard let result else { throw WeirError(.storage, "SQLite: a transaction committed without a result") }
                return result
            } catch {
                state.keys.removeAll()
                state.changes.needsLoad = true
                state.writeBack.needsReplay = true
                do {
                    try state.writeBack.load(db)
                } catch {
                    // Readers reload it from their own snapshot (needsReplay stays set).
                    logger.error("reloading the write-back log failed", metadata: ["weir.error": "\(error)"])
                }
                healthRecord.withLock { $0.commitFailed(at: WallClock.nowMs(), error) }
                throw error
            }
        }
    }

    /// Runs `body` on a read snapshot together with the overlay of the same committed state.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database, inout WriterState) throws -> T) async throws -> T {
        try await read(locked: body, unlocked: { _, result in result })
    }

    /// Like ``read(_:)``, but only `locked` runs under the state lock (it copies what it needs
    /// of the overlay); `unlocked` then reads on the same snapshot while batches go on
    /// committing. Long scans belong in `unlocked`.
    ///
    /// GRDB takes a reader's snapshot when the read starts, before `locked` can take the
    /// lock, so a commit may come between (issue 12's stale view: a fold commits and empties
    /// the overlay, the snapshot is from before it). The writer counts its commits under the
    /// lock; a reader notes the count before its read starts and finds it unchanged under the
    /// lock only if no commit came between, so its snapshot and overlay match. Otherwise it
    /// tries again, and after two tries runs wholly under the lock (the lock is taken before
    /// the snapshot, as the writer cannot commit meanwhile).
    func read<Prepared: Sendable, T: Sendable>(
        locked: @escaping @Sendable (Database, inout WriterState) throws -> Prepared,
        unlocked: @escaping @Sendable (Database, Prepared) throws -> T
    ) async throws -> T {
        for _ in 0..<2 {
            let seen = commits.load(ordering: .acquiring)
            let attempt: T? = try await pool.read { db in
                let prepared: Prepared? = try self.state.withLock { state in
                    guard self.commits.load(ordering: .acquiring) == seen else { return nil }
                    if state.writeBack.needsReplay { try state.writeBack.load(db) }
                    return try locked(db, &state)
                }
                guard let prepared else { return nil }
                return try unlocked(db, prepared)
            }
            if let attempt { return attempt }
        }
        return try state.withLock { state in
            try pool.read { db in
                if state.writeBack.needsReplay { try state.writeBack.load(db) }
                return try unlocked(db, try locked(db, &state))
            }
        }
    }

    /// One batch inside the writer's transaction: plan, load, decide, commit (``Reconciler``).
    private func apply(_ decoded: DecodedBatch, receivedAt: Int64, db: Database, state: inout WriterState) throws -> BatchOutcome {
        let session = SQLiteSession(db)
        let plan = Reconciler.plan(decoded)
        let keys = try session.loadKeys(plan, cache: &state.keys, writeBack: state.writeBack)
        let storedRaw = try session.loadRaw(reconciler.rawLookups(decoded, plan: plan, keys: keys))
        let folded = try reconciler.fold(decoded, plan: plan, keys: keys, storedRaw: storedRaw, receivedAt: receivedAt, logger: logger)
        let storedWindows = try session.loadWindows(folded.windowLookups, writeBack: state.writeBack)
        let storedLedger = decoded.batch.drops.isEmpty ? [] : try session.loadLedger(decoded.batch, plan: plan, keys: keys)
        let changes = try reconciler.decide(folded, storedWindows: storedWindows, storedLedger: storedLedger)
        try session.commit(changes, writeBack: &state.writeBack)
        try state.changes.record(db, windows: changes.windows, devices: state.writeBack.pendingDevices,
                                 maxOutOfOrderMs: settings.maxOutOfOrderMs, committedAt: WallClock.nowMs())
        try state.writeBack.logPending(db)
        // The cached newest ts moves with the batch (the whole cache is dropped if the commit fails).
        var newest: [Int64: Int64] = [:]
        for device in changes.devices { newest[device.id] = device.maxTs }
        for (name, stored) in zip(plan.devices, keys.devices) {
            if let ts = newest[stored.id] { state.keys.advance(name, maxTs: ts) }
        }
        return changes.outcome
    }

    /// Folds the log in a transaction of its own, right after the batch that made it due
    /// (still under the state lock). A fold that cannot be written (a full disk) must not
    /// cost the batch, which is committed in the log already: it is rolled back, the overlay
    /// is reloaded from the log, and the next batch tries again. (In the batch's own
    /// transaction, even under a savepoint, SQLite may abort the whole transaction on
    /// `SQLITE_FULL`.)
    private func foldAfterCommit(_ db: Database, _ state: inout WriterState) {
        do {
            try db.inTransaction(.immediate) {
                try state.writeBack.checkpoint(db)
                return .commit
            }
            healthRecord.withLock { $0.folded() }
        } catch {
            logger.error("folding the window log failed; its batches stay in the log", metadata: ["weir.error": "\(error)"])
            healthRecord.withLock { $0.foldFailed(at: WallClock.nowMs(), error) }
            do {
                try state.writeBack.load(db)
            } catch {
                state.writeBack.needsReplay = true
            }
        }
    }

    /// Folds the write-back log into the tables (inside the writer's transaction).
    private func fold(_ db: Database, _ state: inout WriterState) throws {
        do {
            try state.writeBack.checkpoint(db)
            healthRecord.withLock { $0.folded() }
        } catch {
            healthRecord.withLock { $0.foldFailed(at: WallClock.nowMs(), error) }
            throw error
        }
    }

    /// Whether the store can commit and keeps its log folded (for `/healthz`).
    public func health() -> StoreHealth {
        healthRecord.withLock { $0.health(now: WallClock.nowMs()) }
    }

    public func devices() async throws -> [DeviceSummary] {
        try await deviceSummaries(where: "", arguments: [])
    }

    public func device(named name: String) async throws -> DeviceSummary? {
        try await deviceSummaries(where: "WHERE name = ?", arguments: [name]).first
    }

    /// Device rows overlaid with the changes not yet folded.
    private func deviceSummaries(where clause: String, arguments: StatementArguments) async throws -> [DeviceSummary] {
        let moo = settings.maxOutOfOrderMs
        return try await read { db, state in
            try Row.fetchAll(db, sql: "\(Self.deviceColumns) \(clause) ORDER BY name", arguments: arguments).map { row in
                state.writeBack.overlay(Self.summary(row, moo: moo), id: row["id"], maxOutOfOrderMs: moo)
            }
        }
    }

    /// Reads the series' rows through one prepared statement straight into `WindowRecord`s
    /// and merges the (sorted, usually short) overlay in while scanning; only the id lookups
    /// and the overlay copy hold the state lock.
    public func windows(device: String, metric: String, sizeMs: Int64, from: Int64, to: Int64) async throws -> [WindowRecord]? {
        try await read(locked: { db, state -> (seriesID: Int64?, overlay: [WindowRecord])? in
            guard let deviceID = try Int64.fetchOne(db, sql: "SELECT id FROM devices WHERE name = ?", arguments: [device]) else {
                return nil
            }
            guard let seriesID = try Int64.fetchOne(db, sql: "SELECT id FROM series WHERE device_id = ? AND metric = ?",
                                                    arguments: [deviceID, metric]) else {
                return (nil, [])
            }
            let overlay = state.writeBack.dirtyWindows(seriesID: seriesID)
                .filter { $0.sizeMs == sizeMs && $0.start >= from && $0.start < to }
                .sorted { $0.start < $1.start }
            return (seriesID, overlay)
        }, unlocked: { db, located in
            guard let located else { return nil }
            guard let seriesID = located.seriesID else { return [] }
            return try Self.scanWindows(db, seriesID: seriesID, sizeMs: sizeMs, from: from, to: to, overlay: located.overlay)
        })
    }

    /// The stored windows of one series in `[from, to)`, ascending, with `overlay` (sorted by
    /// start) replacing or adding rows.
    ///
    /// `INDEXED BY windows_by_series`: without statistics SQLite's planner takes the primary
    /// key `(size_ms, start, series_id)` for this query (a range on `start`, and the order it
    /// wants) and walks every series' windows of the size to find this one's — measured, the
    /// cause of the windows API's 8,000 windows/s (issue 16).
    static func scanWindows(_ db: Database, seriesID: Int64, sizeMs: Int64, from: Int64, to: Int64,
                            overlay: [WindowRecord]) throws -> [WindowRecord] {
        let s = try RawStatement(db, sql: """
            SELECT start, count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late
            FROM windows INDEXED BY windows_by_series
            WHERE series_id = ? AND size_ms = ? AND start >= ? AND start < ? ORDER BY start
            """)
        s.bind(1, seriesID)
        s.bind(2, sizeMs)
        s.bind(3, from)
        s.bind(4, to)
        defer { s.reset() }
        var result: [WindowRecord] = []
        var next = 0  // the next overlay record not yet placed
        while try s.step() {
            let start = s.int64(0)
            while next < overlay.count && overlay[next].start < start {
                result.append(overlay[next])
                next += 1
            }
            if next < overlay.count && overlay[next].start == start {
                result.append(overlay[next])
                next += 1
                continue
            }
            let aggregate = WindowAggregate(count: s.int64(1), sum: s.double(2), min: s.double(3), max: s.double(4),
                                            firstTs: s.int64(5), firstValue: s.double(6), lastTs: s.int64(7), lastValue: s.double(8))
            result.append(WindowRecord(sizeMs: sizeMs, start: start, aggregate: aggregate, revision: s.int64(9), late: s.int64(10)))
        }
        result.append(contentsOf: overlay[next...])
        return result
    }

    public func pruneRaw() async throws -> Int {
        let retention = settings.rawRetentionMs
        return try await pool.writeWithoutTransaction { db in
            // Fold first: the cutoffs below are read from `devices.max_ts`, and an idle store
            // gets its log folded on every tick.
            try self.transaction(db) { db, state in try self.fold(db, &state) }
            // One pass over the old end of the time-first key: rows older than the newest
            // device's cutoff are candidates, each checked against its own device's cutoff.
            // No batch can come between (one writer), and readers need not wait for it.
            var deleted = 0
            try db.inTransaction(.immediate) {
                guard let newest = try Int64.fetchOne(db, sql: "SELECT MAX(max_ts) FROM devices") else { return .commit }
                try db.execute(sql: """
                    DELETE FROM raw WHERE ts < ? AND ts < (
                        SELECT devices.max_ts FROM series JOIN devices ON devices.id = series.device_id
                        WHERE series.id = raw.series_id) - ?
                    """, arguments: [newest - retention, retention])
                deleted = db.changesCount
                _ = try Self.pruneChanges(db, retentionMs: self.changesRetentionMs, nowMs: WallClock.nowMs())
                return .commit
            }
            return deleted
        }
    }

    /// A plain read of committed rows, without the overlay (tables the overlay does not cover).
    func readCommitted<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.read(body)
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
        try await pool.writeWithoutTransaction { db in
            try self.transaction(db) { db, state in try self.fold(db, &state) }
        }
        try pool.close()
    }

    /// Writes a consistent copy of the committed file to `path` (tests open it as a new store).
    func copy(to path: String) throws {
        let destination = try DatabaseQueue(path: path)
        try pool.backup(to: destination)
        try destination.close()
    }

    /// Sets SQLite's `max_page_count` on the writer (tests: a full disk, as root too).
    /// Returns the file's current page count.
    @discardableResult
    func limitPages(to maxPages: Int?) throws -> Int {
        try pool.writeWithoutTransaction { db in
            let current = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            try db.execute(sql: "PRAGMA max_page_count = \(maxPages ?? 1_073_741_823)")
            return current
        }
    }

    private static let deviceColumns = """
        SELECT name, last_seen, max_ts, readings, duplicates, late, conflicts, too_late, dropped_late, dropped_at_edge, id FROM devices
        """

    private static func summary(_ row: Row, moo: Int64) -> DeviceSummary {
        let maxTs: Int64? = row[2]
        return DeviceSummary(device: row[0], lastSeen: row[1], watermark: maxTs.map { Watermark.of(newestTs: $0, maxOutOfOrderMs: moo) }, readings: row[3],
                             duplicates: row[4], late: row[5], conflicts: row[6], tooLate: row[7],
                             droppedLate: row[8], droppedAtEdge: row[9])
    }
}
