import Foundation
import GRDB
import Synchronization
import WeirCompression
import WeirCore

/// The edge's store-and-forward buffer: one SQLite file in WAL mode.
///
/// Tables: `chunks` (sealed wire batches under a monotonic `seq`), `drops` (the drop
/// ledger), `quarantine` (chunks that failed to decode), `rejected` (chunks the cloud
/// refused for good, with its response), `dead_letters` (dead letters and clock notes,
/// each capped), `counters` (totals that survive restarts), `device_counters` and `meta`
/// (file identity, uplink state).
///
/// Only one process writes (the running edge); `status` and `dead-letters` read the file
/// at the same time, which WAL allows.
///
/// ```swift
/// let buffer = try EdgeBuffer.open(path: "./weir-edge.db", gateway: "gw-1")
/// try buffer.seal(SealInput(readings: readings), caps: caps)
/// ```
public final class EdgeBuffer: Sendable {
    /// What `meta.format` holds in a file this program made.
    static let formatName = "weir-edge-buffer"
    static let schemaVersion = 1

    public let path: String
    public let gateway: String
    let pool: DatabasePool
    /// Bytes of chunk bodies in `chunks` (kept in memory; only this process writes).
    private let totalBytes: Mutex<Int64>

    private init(path: String, gateway: String, pool: DatabasePool, totalBytes: Int64) {
        self.path = path
        self.gateway = gateway
        self.pool = pool
        self.totalBytes = Mutex(totalBytes)
    }

    /// Opens (or creates) the buffer file. A file that is not SQLite, is damaged, belongs
    /// to another program or to another gateway is an error; it is never replaced.
    public static func open(path: String, gateway: String) throws(WeirError) -> EdgeBuffer {
        let existed = FileManager.default.fileExists(atPath: path)
        var config = Configuration()
        config.busyMode = .timeout(10)
        // Two readers are plenty (the uplink and the status refresh); a small page cache
        // per connection keeps the gateway's memory flat.
        config.maximumReaderCount = 2
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // 256 KiB of page cache per connection (the OS page cache is behind it; appends
            // and sequential chunk reads do not need more): ~1 MB less peak RSS than 1 MiB.
            try db.execute(sql: "PRAGMA cache_size = -256")
            // Checkpoint the WAL every 1 MiB and cut it back to that size afterwards, so
            // the files on disk stay close to what the chunks need.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 256")
            try db.execute(sql: "PRAGMA journal_size_limit = 1048576")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: config)
            let total: Int64 = try pool.write { db in
                try checkIntegrity(db, existed: existed, path: path)
                try migrate(db, gateway: gateway, path: path)
                return try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM chunks") ?? 0
            }
            return EdgeBuffer(path: path, gateway: gateway, pool: pool, totalBytes: total)
        } catch let error as WeirError {
            throw error
        } catch {
            throw WeirError(.damagedFile, "buffer file \(path) cannot be used: \(error). It is left untouched; move it away to start with an empty buffer", cause: SendableDescription(error))
        }
    }

    /// Opens an existing buffer file for reading only (`status`, `dead-letters`).
    public static func openReadOnly(path: String) throws(WeirError) -> EdgeBuffer {
        guard FileManager.default.fileExists(atPath: path) else {
            throw WeirError(.storage, "buffer file \(path) does not exist (is buffer.path right, has the edge run yet?)")
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        do {
            let pool = try DatabasePool(path: path, configuration: config)
            let (gateway, total): (String, Int64) = try pool.read { db in
                guard try db.tableExists("meta"),
                      try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'") == formatName else {
                    throw WeirError(.damagedFile, "\(path) is not a weir-edge buffer file")
                }
                let gw = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'gateway'") ?? "?"
                let total = try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM chunks") ?? 0
                return (gw, total)
            }
            return EdgeBuffer(path: path, gateway: gateway, pool: pool, totalBytes: total)
        } catch let error as WeirError {
            throw error
        } catch {
            throw WeirError(.damagedFile, "buffer file \(path) cannot be read: \(error)", cause: SendableDescription(error))
        }
    }

    private static func checkIntegrity(_ db: Database, existed: Bool, path: String) throws {
        // Reading the schema is what fails first on a file that is not SQLite.
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        if tables.isEmpty { return }
        guard tables.contains("meta"),
              let format = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'"),
              format == formatName else {
            throw WeirError(.damagedFile, "\(path) is an SQLite file of another program (tables: \(tables.prefix(8).joined(separator: ", "))); refusing to use it as the edge buffer")
        }
        let check = try String.fetchAll(db, sql: "PRAGMA quick_check")
        guard check == ["ok"] else {
            throw WeirError(.damagedFile, "buffer file \(path) is damaged (SQLite quick_check: \(check.prefix(3).joined(separator: "; "))); it is left untouched — move it away to start afresh, or recover it with sqlite3 .recover")
        }
    }

    private static func migrate(_ db: Database, gateway: String, path: String) throws {
        if try !db.tableExists("meta") {
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE chunks (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    sealed_at INTEGER NOT NULL,
                    readings INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    min_ts INTEGER NOT NULL,
                    max_ts INTEGER NOT NULL,
                    body BLOB NOT NULL
                );
                CREATE TABLE drops (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    device TEXT NOT NULL, metric TEXT NOT NULL,
                    from_ts INTEGER NOT NULL, to_ts INTEGER NOT NULL, count INTEGER NOT NULL,
                    recorded_at INTEGER NOT NULL
                );
                CREATE TABLE quarantine (
                    seq INTEGER PRIMARY KEY, sealed_at INTEGER NOT NULL, readings INTEGER NOT NULL,
                    bytes INTEGER NOT NULL, reason TEXT NOT NULL, quarantined_at INTEGER NOT NULL, body BLOB NOT NULL
                );
                CREATE TABLE rejected (
                    seq INTEGER PRIMARY KEY, batch TEXT NOT NULL, readings INTEGER NOT NULL, status INTEGER NOT NULL,
                    response TEXT NOT NULL, rejected_at INTEGER NOT NULL, body BLOB NOT NULL
                );
                CREATE TABLE dead_letters (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, topic TEXT NOT NULL,
                    payload BLOB NOT NULL, reason TEXT NOT NULL
                );
                CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                """)
            try createDeviceCounters(db)
            try addDeadLetterKind(db)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('format', ?), ('version', ?), ('gateway', ?), ('created_at', ?)",
                           arguments: [formatName, "\(schemaVersion)", gateway, "\(EdgeClock.nowMs())"])
            return
        }
        let version = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'version'").flatMap(Int.init) ?? 0
        guard version == schemaVersion else {
            throw WeirError(.damagedFile, "buffer file \(path) has schema version \(version); this weir-edge reads version \(schemaVersion)")
        }
        let owner = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'gateway'") ?? ""
        guard owner == gateway else {
            throw WeirError(.badConfig, "buffer file \(path) belongs to gateway '\(owner)', not '\(gateway)'; use another buffer.path (its data would be sent under the wrong name)")
        }
        // Added after schema version 1 shipped; a table more is invisible to older readers,
        // so files written before it keep their version and gain the table here.
        try createDeviceCounters(db)
        try addDeadLetterKind(db)
    }

    private static func createDeviceCounters(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS device_counters (
                device TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
                PRIMARY KEY (device, name)
            ) WITHOUT ROWID
            """)
    }

    /// The `kind` of a dead-letter row (`dead_letter` or `clock_note`, see `DeadLetter.Kind`),
    /// added after schema version 1 shipped, like `device_counters`: an older weir-edge
    /// still reads and writes the file (its rows default to dead letters). Rows written
    /// before the column were clock notes exactly when their reason starts "replaced: ".
    private static func addDeadLetterKind(_ db: Database) throws {
        if try !hasDeadLetterKind(db) {
            try db.execute(sql: "ALTER TABLE dead_letters ADD COLUMN kind TEXT NOT NULL DEFAULT 'dead_letter'")
            try db.execute(sql: "UPDATE dead_letters SET kind = 'clock_note' WHERE \(legacyClockNote)")
        }
        try db.execute(sql: "CREATE INDEX IF NOT EXISTS dead_letters_by_kind ON dead_letters (kind, id)")
    }

    /// The SQL condition that picks a row of a file without the `kind` column that is a
    /// clock note: the ingest pipeline writes their reasons as "replaced: ...".
    static let legacyClockNote = "substr(reason, 1, 10) = 'replaced: '"

    /// Whether the dead-letter table has its `kind` column (a file no edge of this version
    /// has opened for writing yet has not).
    static func hasDeadLetterKind(_ db: Database) throws -> Bool {
        try db.columns(in: "dead_letters").contains { $0.name == "kind" }
    }

    /// Bytes of sealed chunk bodies waiting to be forwarded.
    public var bufferedBytes: Int64 { totalBytes.withLock { $0 } }

    func adjustBytes(_ delta: Int64) {
        totalBytes.withLock { $0 += delta }
    }
}

/// Wall-clock time in epoch milliseconds.
public enum EdgeClock {
    /// Now, in epoch milliseconds.
    public static func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// Carries a non-Sendable error's text as a cause.
struct SendableDescription: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ error: any Error) { description = "\(error)" }
}
