import Foundation
import GRDB
import WeirCore

/// The ground truth of a simulation run: every distinct valid reading the simulator
/// published, the run's parameters and its tally, in one SQLite file.
///
/// `run` writes it as it publishes (a reading is recorded once its publish is
/// acknowledged); `verify` and `watch` read it, also while the run is still going.
///
/// ```swift
/// let truth = try TruthStore.create(path: "truth.db", replacing: false)
/// try truth.start(options)
/// try truth.record(readings)
/// try truth.update(tally, finished: true)
/// ```
public final class TruthStore: Sendable {
    /// The `format` value in the `run` table: what kind of file this is, and its version.
    public static let format = "weir-sim-truth/1"

    private let writer: any DatabaseWriter
    /// The file path.
    public let path: String

    private init(writer: any DatabaseWriter, path: String) {
        self.writer = writer
        self.path = path
    }

    /// Creates a new truth file. An existing file is an error unless `replacing` is true
    /// (a truth that mixes two runs would verify nothing).
    public static func create(path: String, replacing: Bool) throws(WeirError) -> TruthStore {
        let files = FileManager.default
        if files.fileExists(atPath: path) {
            guard replacing else {
                throw WeirError(.badArgument, "truth file \(path) already exists; choose another --truth or pass --replace to overwrite it")
            }
            for suffix in ["", "-wal", "-shm"] { try? files.removeItem(atPath: path + suffix) }
        }
        do {
            let pool = try DatabasePool(path: path)
            try pool.write { db in
                try db.execute(sql: """
                    CREATE TABLE run (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    CREATE TABLE tally (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
                    CREATE TABLE readings (
                        device TEXT NOT NULL, metric TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                        PRIMARY KEY (device, metric, ts)
                    ) WITHOUT ROWID;
                    """)
                try db.execute(sql: "INSERT INTO run (key, value) VALUES ('format', ?)", arguments: [format])
            }
            return TruthStore(writer: pool, path: path)
        } catch {
            throw WeirError(.storage, "cannot create truth file \(path)", cause: error)
        }
    }

    /// Opens an existing truth file for reading; a missing or foreign file is a clear error.
    public static func open(path: String) throws(WeirError) -> TruthStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw WeirError(.badArgument, "truth file \(path) does not exist (weir-sim run --truth \(path) writes it)")
        }
        let queue: DatabaseQueue
        do {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.busyMode = .timeout(5)
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw WeirError(.damagedFile, "cannot open truth file \(path)", cause: error)
        }
        let found: String?
        do {
            found = try queue.read { db -> String? in
                guard try db.tableExists("run"), try db.tableExists("readings") else { return nil }
                return try String.fetchOne(db, sql: "SELECT value FROM run WHERE key = 'format'")
            }
        } catch {
            throw WeirError(.damagedFile, "\(path) is not a readable SQLite file", cause: error)
        }
        guard found == format else {
            throw WeirError(.damagedFile, "\(path) is not a weir-sim truth file (format \(found ?? "missing"), expected \(format))")
        }
        return TruthStore(writer: queue, path: path)
    }

    // MARK: - Writing

    /// Records the run's parameters.
    public func start(_ options: SimulationOptions, broker: String) throws(WeirError) {
        let values: [(String, String)] = [
            ("seed", String(options.seed)),
            ("start", String(options.start)),
            ("devices", String(options.devices)),
            ("rate", String(options.rate)),
            ("duration_ms", String(options.duration.milliseconds)),
            ("metrics", options.metrics.joined(separator: ",")),
            ("topic", options.topic),
            ("dup", String(options.duplicates)),
            ("reorder", String(options.reorder)),
            ("offline", String(options.offline)),
            ("skew", String(options.skew)),
            ("malformed", String(options.malformed)),
            ("broker", broker),
            ("finished", "0"),
        ]
        try write("cannot record the run's parameters") { db in
            for (key, value) in values {
                try db.execute(sql: "INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)", arguments: [key, value])
            }
        }
    }

    /// Records readings (identities already present are kept as they are).
    public func record(_ readings: [Reading]) throws(WeirError) {
        guard !readings.isEmpty else { return }
        try write("cannot record \(readings.count) readings") { db in
            let statement = try db.cachedStatement(sql: "INSERT OR IGNORE INTO readings (device, metric, ts, value) VALUES (?, ?, ?, ?)")
            for reading in readings {
                try statement.execute(arguments: [reading.device, reading.metric, reading.ts, reading.value])
            }
        }
    }

    /// Records readings and the tally in one transaction, so a reader never sees one
    /// without the other.
    public func record(_ readings: [Reading], tally: SimulationTally, finished: Bool = false) throws(WeirError) {
        try write("cannot record \(readings.count) readings") { db in
            let statement = try db.cachedStatement(sql: "INSERT OR IGNORE INTO readings (device, metric, ts, value) VALUES (?, ?, ?, ?)")
            for reading in readings {
                try statement.execute(arguments: [reading.device, reading.metric, reading.ts, reading.value])
            }
            try Self.writeTally(tally, finished: finished, db)
        }
    }

    /// Stores the tally; `finished` marks a run that flushed everything it held.
    public func update(_ tally: SimulationTally, finished: Bool) throws(WeirError) {
        try write("cannot record the tally") { db in try Self.writeTally(tally, finished: finished, db) }
    }

    private static func writeTally(_ tally: SimulationTally, finished: Bool, _ db: Database) throws {
        let statement = try db.cachedStatement(sql: "INSERT OR REPLACE INTO tally (name, value) VALUES (?, ?)")
        for (name, value) in tally.fields {
            try statement.execute(arguments: [name, value])
        }
        try db.execute(sql: "INSERT OR REPLACE INTO run (key, value) VALUES ('finished', ?)", arguments: [finished ? "1" : "0"])
    }

    private func write(_ what: String, _ body: @Sendable (Database) throws -> Void) throws(WeirError) {
        do {
            try writer.write { db in try body(db) }
        } catch {
            throw WeirError(.storage, "\(what) in truth file \(path)", cause: error)
        }
    }

    // MARK: - Reading

    /// The run's parameters and tally.
    public func summary() throws(WeirError) -> TruthSummary {
        do {
            return try writer.read { db in
                var run: [String: String] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT key, value FROM run") {
                    run[row["key"]] = row["value"]
                }
                var fields: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT name, value FROM tally") {
                    fields[row["name"]] = row["value"]
                }
                let readings = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM readings") ?? 0
                return TruthSummary(parameters: run, tally: SimulationTally(fields: fields), readings: readings)
            }
        } catch {
            throw WeirError(.storage, "cannot read truth file \(path)", cause: error)
        }
    }

    /// Every reading, ordered by device, metric and time.
    public func readings() throws(WeirError) -> [Reading] {
        do {
            return try writer.read { db in
                var result: [Reading] = []
                let rows = try Row.fetchCursor(db, sql: "SELECT device, metric, ts, value FROM readings ORDER BY device, metric, ts")
                while let row = try rows.next() {
                    result.append(Reading(device: row[0], metric: row[1], ts: row[2], value: row[3]))
                }
                return result
            }
        } catch {
            throw WeirError(.storage, "cannot read the readings of truth file \(path)", cause: error)
        }
    }

    /// Distinct readings per device.
    public func deviceCounts() throws(WeirError) -> [String: Int] {
        do {
            return try writer.read { db in
                var result: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT device, COUNT(*) FROM readings GROUP BY device") {
                    result[row[0]] = row[1]
                }
                return result
            }
        } catch {
            throw WeirError(.storage, "cannot count the readings of truth file \(path)", cause: error)
        }
    }

    /// The number of distinct readings recorded.
    public func readingCount() throws(WeirError) -> Int {
        do {
            return try writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM readings") ?? 0 }
        } catch {
            throw WeirError(.storage, "cannot count the readings of truth file \(path)", cause: error)
        }
    }
}

/// A truth file's parameters, tally and reading count.
public struct TruthSummary: Sendable, Hashable {
    /// Run parameters as stored (`seed`, `devices`, `metrics`, `finished`, ...).
    public var parameters: [String: String]
    public var tally: SimulationTally
    /// Distinct readings recorded.
    public var readings: Int

    /// Whether the run flushed everything its devices held.
    public var finished: Bool { parameters["finished"] == "1" }
}
