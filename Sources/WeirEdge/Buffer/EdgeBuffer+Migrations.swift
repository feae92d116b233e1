import GRDB

/// The buffer file's schema, one GRDB migration per version.
///
/// | version | migration | what it adds |
/// |---|---|---|
/// | 1 | `1-initial` | the schema as first shipped: `meta` (with the file's format, gateway and creation time), `chunks`, `drops`, `quarantine`, `rejected`, `dead_letters`, `counters` |
/// | 2 | `2-device-counters` | `device_counters` (per-device filter drops and clock counts) |
/// | 3 | `3-dead-letter-kind` | `dead_letters.kind` (`dead_letter` or `clock_note`) and its index |
///
/// Each migration runs in its own transaction and sets `meta.version` to its version, so
/// the number a user sees (`sqlite3 FILE "SELECT * FROM meta"`) and GRDB's
/// `grdb_migrations` agree. A new version is a new migration appended to `migrator`;
/// a shipped migration is never edited. Rows of `meta` (a key/value table: uplink state,
/// outbox, ingest state) need no migration.
///
/// Files written before the migrator (versions 1 to 3, all labelled version 1, see
/// `adoptHandWrittenSchema`) are recognised by their shape and carried on from there.
extension EdgeBuffer {
    /// The schema version this program writes: the number of migrations.
    static let schemaVersion = 3

    /// The migrations, in order. `gateway` and `createdAt` fill the identity rows of a new
    /// file, written in the same transaction as its tables, so a file is never left
    /// without them.
    static func migrator(gateway: String, createdAt: Int64) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration(migrationIDs[0]) { db in
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
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('format', ?), ('gateway', ?), ('created_at', ?)",
                           arguments: [formatName, gateway, "\(createdAt)"])
            try setVersion(1, db)
        }
        migrator.registerMigration(migrationIDs[1]) { db in
            try db.execute(sql: """
                CREATE TABLE device_counters (
                    device TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
                    PRIMARY KEY (device, name)
                ) WITHOUT ROWID
                """)
            try setVersion(2, db)
        }
        migrator.registerMigration(migrationIDs[2]) { db in
            // Older rows were clock notes exactly when their reason starts "replaced: ".
            try db.execute(sql: "ALTER TABLE dead_letters ADD COLUMN kind TEXT NOT NULL DEFAULT 'dead_letter'")
            try db.execute(sql: "UPDATE dead_letters SET kind = 'clock_note' WHERE \(legacyClockNote)")
            try db.execute(sql: "CREATE INDEX dead_letters_by_kind ON dead_letters (kind, id)")
            try setVersion(3, db)
        }
        return migrator
    }

    /// The migrations' identifiers, version 1 first (as kept in `grdb_migrations`).
    static let migrationIDs = ["1-initial", "2-device-counters", "3-dead-letter-kind"]

    private static func setVersion(_ version: Int, _ db: Database) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)", arguments: ["\(version)"])
    }

    /// The SQL condition that picks a row of a file without the `kind` column that is a
    /// clock note: the ingest pipeline writes their reasons as "replaced: ...".
    static let legacyClockNote = "substr(reason, 1, 10) = 'replaced: '"

    /// Whether the dead-letter table has its `kind` column (a file of version 1 or 2, which
    /// `status` may read without migrating it, has not).
    static func hasDeadLetterKind(_ db: Database) throws -> Bool {
        try db.columns(in: "dead_letters").contains { $0.name == "kind" }
    }

    /// The schema version of an existing file: `meta.version`, or 0 when it has none.
    static func fileVersion(_ db: Database) throws -> Int {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'version'").flatMap(Int.init) ?? 0
    }

    /// Records the migrations a file written before the migrator already has, so the
    /// migrator runs only the rest. Those files all say version 1: the edge then added
    /// `device_counters` (version 2) and `dead_letters.kind` (version 3) to a file when
    /// it opened it, without changing its version. Their shape tells which they have
    /// (the two were always added in that order). A file the migrator wrote has
    /// `grdb_migrations` and is left alone.
    static func adoptHandWrittenSchema(_ db: Database) throws {
        guard try db.tableExists("meta"), try !db.tableExists("grdb_migrations") else { return }
        let version = try hasDeadLetterKind(db) ? 3 : try db.tableExists("device_counters") ? 2 : 1
        // The table GRDB's migrator keeps (`DatabaseMigrator.appliedIdentifiers(_:)`), as it creates it.
        try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
        for id in migrationIDs.prefix(version) {
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [id])
        }
        if version == 3 { // the index came with the column; a file that lost it gets it back
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS dead_letters_by_kind ON dead_letters (kind, id)")
        }
        try setVersion(version, db)
    }
}
