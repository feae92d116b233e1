import Foundation
import GRDB
import Synchronization
import WeirCompression
import WeirCore
import WeirSupport

/// The edge's store-and-forward buffer: one SQLite file in WAL mode.
///
/// Tables: `chunks` (sealed wire batches under a monotonic `seq`), `drops` (the drop
/// ledger), `quarantine` (chunks that failed to decode), `rejected` (chunks the cloud
/// refused for good, with its response), `dead_letters` (dead letters and clock notes,
/// each capped), `counters` (totals that survive restarts), `device_counters` and `meta`
/// (file identity, uplink state). The schema's versions and their migrations are in
/// `EdgeBuffer+Migrations.swift`.
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
            let migrations = migrator(gateway: gateway, createdAt: WallClock.nowMs())
            try pool.write { db in
                try checkIntegrity(db, existed: existed, path: path)
                try checkOwnerAndVersion(db, migrations: migrations, gateway: gateway, path: path)
                try adoptHandWrittenSchema(db)
            }
            try migrations.migrate(pool)
            let total = try pool.read { db in
                try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM chunks") ?? 0
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

    /// Refuses an existing file of another gateway or of a newer weir-edge before anything
    /// is written to it.
    private static func checkOwnerAndVersion(_ db: Database, migrations: DatabaseMigrator, gateway: String, path: String) throws {
        guard try db.tableExists("meta") else { return } // a new file
        let version = try fileVersion(db)
        guard version >= 1 else {
            throw WeirError(.damagedFile, "buffer file \(path) has no schema version (meta.version); it is left untouched")
        }
        guard try version <= schemaVersion && !migrations.hasBeenSuperseded(db) else {
            throw WeirError(.damagedFile, "buffer file \(path) has schema version \(version), written by a newer weir-edge; this weir-edge reads versions up to \(schemaVersion)")
        }
        let owner = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'gateway'") ?? ""
        guard owner == gateway else {
            throw WeirError(.badConfig, "buffer file \(path) belongs to gateway '\(owner)', not '\(gateway)'; use another buffer.path (its data would be sent under the wrong name)")
        }
    }

    /// Bytes of sealed chunk bodies waiting to be forwarded.
    public var bufferedBytes: Int64 { totalBytes.withLock { $0 } }

    func adjustBytes(_ delta: Int64) {
        totalBytes.withLock { $0 += delta }
    }
}

/// Carries a non-Sendable error's text as a cause.
struct SendableDescription: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ error: any Error) { description = "\(error)" }
}
