import Foundation
import GRDB
import Testing
import WeirCompression
import WeirCore
import WeirEdge
import WeirTestSupport

/// A buffer file as an earlier weir-edge left it, written with raw SQL in the schema of
/// that version: version 1 as first shipped, version 2 with `device_counters`, version 3
/// with `dead_letters.kind`. Before the migrator every one of them said version 1 in
/// `meta` and had no `grdb_migrations`; `byMigrator` makes the file as the migrator leaves
/// it stopped at that version instead (what a newer edge will find after this one).
struct OldBufferFile {
    static let gateway = "gw-old"
    static let shapes: [(version: Int, byMigrator: Bool)] = [(1, false), (2, false), (3, false), (1, true), (2, true)]

    let version: Int
    let byMigrator: Bool

    static let readings1 = (0..<30).map { Reading(device: "d1", metric: "temp", ts: 1_732_540_000_000 + Int64($0) * 1000, value: 20 + Double($0) / 10) }
    static let readings2 = (0..<12).map { Reading(device: "d2", metric: "hum", ts: 1_732_540_100_000 + Int64($0) * 500, value: 40 + Double($0)) }

    /// The tables of version 1, as its code created them. Copied here on purpose, like
    /// the two below: an old file must not take its schema from the code under test.
    static let version1Schema = """
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
        """
    /// What version 2 added.
    static let version2Schema = """
        CREATE TABLE IF NOT EXISTS device_counters (
            device TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
            PRIMARY KEY (device, name)
        ) WITHOUT ROWID
        """
    /// What version 3 added.
    static let version3Schema = """
        ALTER TABLE dead_letters ADD COLUMN kind TEXT NOT NULL DEFAULT 'dead_letter';
        CREATE INDEX IF NOT EXISTS dead_letters_by_kind ON dead_letters (kind, id);
        """

    /// Writes the file with rows in every table: chunks 41 and 42 (the sequence has passed
    /// 42), a drop, a quarantined and a rejected chunk, a dead letter and a clock note,
    /// counters, device counters (from version 2), and meta rows beside the identity.
    func write(to path: String) throws {
        let queue = try DatabaseQueue(path: path)
        let body1 = Data(try WireBatch.encode(Batch(gateway: Self.gateway, id: "chunk", readings: Self.readings1)))
        let body2 = Data(try WireBatch.encode(Batch(gateway: Self.gateway, id: "chunk", readings: Self.readings2)))
        try queue.write { db in
            try db.execute(sql: Self.version1Schema)
            if version >= 2 { try db.execute(sql: Self.version2Schema) }
            if version >= 3 { try db.execute(sql: Self.version3Schema) }
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('format', 'weir-edge-buffer'), ('version', ?), ('gateway', ?), ('created_at', '1732500000000')",
                           arguments: [byMigrator ? "\(version)" : "1", Self.gateway])
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('last_forward_at', '1732540200000'), ('uplink_state', 'backoff'), ('ingest_state', 'running')")
            // Chunk 40 was forwarded (deleted): the next seal must not reuse 40 to 42.
            try db.execute(sql: "INSERT INTO chunks (seq, sealed_at, readings, bytes, min_ts, max_ts, body) VALUES (40, 1, 1, 1, 1, 1, x'00')")
            try db.execute(sql: "DELETE FROM chunks WHERE seq = 40")
            try db.execute(sql: "INSERT INTO chunks (seq, sealed_at, readings, bytes, min_ts, max_ts, body) VALUES (41, 1732540050000, ?, ?, ?, ?, ?), (42, 1732540150000, ?, ?, ?, ?, ?)",
                           arguments: [Self.readings1.count, body1.count, Self.readings1.first!.ts, Self.readings1.last!.ts, body1,
                                       Self.readings2.count, body2.count, Self.readings2.first!.ts, Self.readings2.last!.ts, body2])
            try db.execute(sql: "INSERT INTO drops (device, metric, from_ts, to_ts, count, recorded_at) VALUES ('d3', 'temp', 1000, 9000, 12, 1732540000500)")
            try db.execute(sql: "INSERT INTO quarantine (seq, sealed_at, readings, bytes, reason, quarantined_at, body) VALUES (7, 1732530000000, 5, 3, 'checksum mismatch', 1732530000100, x'DEADBE')")
            try db.execute(sql: "INSERT INTO rejected (seq, batch, readings, status, response, rejected_at, body) VALUES (9, 'gw-old:9r4', 4, 422, '{\"error\":\"nope\"}', 1732530000200, x'0102')")
            let letters = "INSERT INTO dead_letters (at, topic, payload, reason\(version >= 3 ? ", kind" : "")) VALUES "
                + "(1732540000001, 'devices/d9/telemetry', x'7B6F6F7073', 'not valid JSON: byte 1: oops'\(version >= 3 ? ", 'dead_letter'" : "")), "
                + "(1732540000002, 'devices/d8/telemetry', x'7B7D', 'replaced: d8/temp: timestamp 5 is before 2000-01-01'\(version >= 3 ? ", 'clock_note'" : ""))"
            try db.execute(sql: letters)
            try db.execute(sql: "INSERT INTO counters (name, value) VALUES ('accepted_readings', 42), ('dead_letters', 1), ('clock_replaced', 1)")
            if version >= 2 {
                try db.execute(sql: "INSERT INTO device_counters (device, name, value) VALUES ('d1', 'deadband', 7), ('d8', 'clock_replaced', 1)")
            }
            if byMigrator {
                try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
                for id in ["1-initial", "2-device-counters", "3-dead-letter-kind"].prefix(version) {
                    try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [id])
                }
            }
        }
        try queue.close()
    }

    /// Every row of every table of version 1 (their version-1 columns), and of
    /// `device_counters` when there is one, as text (`value|value|...`).
    static func rows(at path: String) throws -> [String: [String]] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        let tables = [
            "meta": "key, value", "chunks": "seq, sealed_at, readings, bytes, min_ts, max_ts, hex(body)",
            "drops": "id, device, metric, from_ts, to_ts, count, recorded_at",
            "quarantine": "seq, sealed_at, readings, bytes, reason, quarantined_at, hex(body)",
            "rejected": "seq, batch, readings, status, response, rejected_at, hex(body)",
            "dead_letters": "id, at, topic, hex(payload), reason", "counters": "name, value",
            "device_counters": "device, name, value",
        ]
        return try queue.read { db in
            var out: [String: [String]] = [:]
            for (table, columns) in tables where try db.tableExists(table) {
                out[table] = try Row.fetchAll(db, sql: "SELECT \(columns) FROM \(table) ORDER BY 1, 2").map { row in
                    row.databaseValues.map { "\($0)" }.joined(separator: "|")
                }
            }
            return out
        }
    }
}

@Suite("weir-edge buffer file migrations")
struct EdgeBufferMigrationTests {
    static let caps = BufferCaps(maxBytes: 1 << 30, maxAgeMs: 100 * 365 * 86_400_000, maxDeadLetters: 100)

    @Test("a buffer file of every earlier schema version opens with every row kept, the new columns at their defaults, and keeps working",
          arguments: OldBufferFile.shapes)
    func earlierVersionsOpen(version: Int, byMigrator: Bool) async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.file("old-v\(version).db")
            try OldBufferFile(version: version, byMigrator: byMigrator).write(to: path)
            let before = try OldBufferFile.rows(at: path)
            #expect(before["chunks"]?.count == 2 && before["dead_letters"]?.count == 2 && before["meta"]?.count == 7)

            let buffer = try EdgeBuffer.open(path: path, gateway: OldBufferFile.gateway)
            var after = try OldBufferFile.rows(at: path)
            // Every row of every table survives; meta's version now names the schema.
            #expect(after["meta"]?.filter { $0.hasPrefix("\"version\"|") } == ["\"version\"|\"3\""], "\(after["meta"] ?? [])")
            after["meta"]?.removeAll { $0.hasPrefix("\"version\"|") }
            var expected = before
            expected["meta"]?.removeAll { $0.hasPrefix("\"version\"|") }
            if version < 2 { expected["device_counters"] = [] } // the new table, empty
            #expect(after == expected)

            let queue = try DatabaseQueue(path: path)
            let (kinds, migrations) = try await queue.read { db in
                (try String.fetchAll(db, sql: "SELECT kind FROM dead_letters ORDER BY id"),
                 try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier"))
            }
            try queue.close()
            // The new column's default, and the older rows' notes labelled as notes.
            #expect(kinds == ["dead_letter", "clock_note"])
            #expect(migrations == ["1-initial", "2-device-counters", "3-dead-letter-kind"])

            // The edge reads and forwards what the old edge left, and its sequence goes on.
            var status = try buffer.status()
            #expect((status.chunks, status.readings) == (2, 42))
            #expect((status.deadLetterRows, status.clockNoteRows) == (1, 1))
            #expect((status.rejectedChunks, status.quarantinedChunks, status.pendingDropRows) == (1, 1, 1))
            #expect(status.counters == ["accepted_readings": 42, "dead_letters": 1, "clock_replaced": 1])
            #expect(status.deviceCounters == (version >= 2 ? ["d1": ["deadband": 7], "d8": ["clock_replaced": 1]] : [:]))
            #expect(status.bytes > 0 && buffer.bufferedBytes == status.bytes)
            let chunks = try buffer.nextChunks(replay: .oldestFirst, maxBytes: 1 << 20, maxReadings: 1000)
            #expect(chunks.map(\.seq) == [41, 42])
            #expect(try chunks.flatMap { try WireBatch.decode($0.body, maxSize: 1 << 20).readings } == OldBufferFile.readings1 + OldBufferFile.readings2)
            let sealed = try buffer.seal(SealInput(readings: [Reading(device: "d1", metric: "temp", ts: 1_732_540_300_000, value: 1)],
                                                   deadLetters: [DeadLetter(at: 3, topic: "t", payload: [1], reason: "bad")],
                                                   counters: ["accepted_readings": 1], deviceCounters: ["d1": ["deadband": 1]]),
                                         caps: Self.caps)
            #expect(sealed.seq == 43)
            status = try buffer.status()
            #expect(status.counters["accepted_readings"] == 43)
            #expect(status.deviceCounters["d1"]?["deadband"] == (version >= 2 ? 8 : 1))
            #expect((status.deadLetterRows, status.clockNoteRows) == (2, 1))

            // Opening again migrates nothing more and loses nothing.
            let settled = try OldBufferFile.rows(at: path)
            _ = try EdgeBuffer.open(path: path, gateway: OldBufferFile.gateway)
            #expect(try OldBufferFile.rows(at: path) == settled)
        }
    }

    @Test("a new file gets every migration and version 3; reopening it changes nothing")
    func newFile() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.file("new.db")
            _ = try EdgeBuffer.open(path: path, gateway: "gw-1")
            let queue = try DatabaseQueue(path: path)
            let (meta, migrations, columns) = try await queue.read { db in
                (try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT key, value FROM meta").map { ($0["key"] as String, $0["value"] as String) }),
                 try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier"),
                 try db.columns(in: "dead_letters").map(\.name))
            }
            try queue.close()
            #expect(meta["format"] == "weir-edge-buffer")
            #expect(meta["gateway"] == "gw-1")
            #expect(meta["version"] == "3")
            #expect(meta["created_at"].flatMap(Int64.init) != nil)
            #expect(migrations == ["1-initial", "2-device-counters", "3-dead-letter-kind"])
            #expect(columns == ["id", "at", "topic", "payload", "reason", "kind"])
            let settled = try OldBufferFile.rows(at: path)
            _ = try EdgeBuffer.open(path: path, gateway: "gw-1")
            #expect(try OldBufferFile.rows(at: path) == settled)
        }
    }

    @Test("a file written by a newer weir-edge is refused with its version named, and left untouched")
    func newerFileRefused() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.file("newer.db")
            _ = try EdgeBuffer.open(path: path, gateway: "gw-1")
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in
                try db.execute(sql: "CREATE TABLE future (x INTEGER)")
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('4-future')")
                try db.execute(sql: "UPDATE meta SET value = '4' WHERE key = 'version'")
            }
            try queue.close()
            let before = try OldBufferFile.rows(at: path)
            do {
                _ = try EdgeBuffer.open(path: path, gateway: "gw-1")
                Issue.record("opened a file of schema version 4")
            } catch let error as WeirError {
                #expect(error.message.contains("schema version 4"), "\(error.message)")
                #expect(error.message.contains("newer weir-edge"), "\(error.message)")
            }
            #expect(try OldBufferFile.rows(at: path) == before)
        }
    }
}
