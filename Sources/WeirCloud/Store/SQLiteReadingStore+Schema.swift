import GRDB

extension SQLiteReadingStore {
    /// The schema, as GRDB migrations (applied in order, each once, recorded in the file).
    ///
    /// Series are interned to integer ids so the two big tables (`raw`, `windows`) are
    /// narrow `WITHOUT ROWID` B-trees. Both are keyed **time first**: a batch holds a few
    /// seconds of readings from thousands of series, and a series-first key scatters them
    /// over one B-tree leaf per series, so every commit rewrites thousands of pages (measured:
    /// a plain `INSERT OR IGNORE` of the benchmark's readings runs at 110k/s keyed
    /// `(series_id, ts)` and 1.2M/s keyed `(ts, series_id)`). Lookups by identity are primary
    /// key lookups either way; the window query goes through `windows_by_series`, whose
    /// entries change only when a window is created. The PostgreSQL store keys its tables by
    /// device first so they distribute on Citus.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE devices (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    max_ts INTEGER,
                    last_seen INTEGER,
                    readings INTEGER NOT NULL DEFAULT 0,
                    duplicates INTEGER NOT NULL DEFAULT 0,
                    late INTEGER NOT NULL DEFAULT 0,
                    conflicts INTEGER NOT NULL DEFAULT 0,
                    too_late INTEGER NOT NULL DEFAULT 0,
                    dropped_late INTEGER NOT NULL DEFAULT 0,
                    dropped_at_edge INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE series (
                    id INTEGER PRIMARY KEY,
                    device_id INTEGER NOT NULL REFERENCES devices(id),
                    metric TEXT NOT NULL,
                    UNIQUE (device_id, metric)
                );
                -- Every distinct reading, for deduplication; applied = 0 for late readings
                -- dropped by policy (kept so a resend is recognised).
                CREATE TABLE raw (
                    series_id INTEGER NOT NULL,
                    ts INTEGER NOT NULL,
                    value REAL NOT NULL,
                    applied INTEGER NOT NULL DEFAULT 1,
                    PRIMARY KEY (ts, series_id)
                ) WITHOUT ROWID;
                CREATE TABLE windows (
                    series_id INTEGER NOT NULL,
                    size_ms INTEGER NOT NULL,
                    start INTEGER NOT NULL,
                    count INTEGER NOT NULL,
                    sum REAL NOT NULL,
                    min REAL NOT NULL,
                    max REAL NOT NULL,
                    first_ts INTEGER NOT NULL,
                    first_value REAL NOT NULL,
                    last_ts INTEGER NOT NULL,
                    last_value REAL NOT NULL,
                    revision INTEGER NOT NULL DEFAULT 0,
                    late INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (size_ms, start, series_id)
                ) WITHOUT ROWID;
                CREATE UNIQUE INDEX windows_by_series ON windows (series_id, size_ms, start);
                -- Readings of accepted batches that broke the data model or came too late.
                CREATE TABLE rejected (
                    gateway TEXT NOT NULL,
                    batch TEXT NOT NULL,
                    idx INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    raw TEXT NOT NULL,
                    received_at INTEGER NOT NULL,
                    PRIMARY KEY (gateway, batch, idx)
                ) WITHOUT ROWID;
                -- Audit of late readings not applied under late_policy: drop.
                CREATE TABLE late_dropped (
                    series_id INTEGER NOT NULL,
                    ts INTEGER NOT NULL,
                    value REAL NOT NULL,
                    watermark INTEGER NOT NULL,
                    received_at INTEGER NOT NULL,
                    PRIMARY KEY (series_id, ts)
                ) WITHOUT ROWID;
                -- The edge's drop ledger: readings lost on the gateway.
                CREATE TABLE edge_drops (
                    device_id INTEGER NOT NULL,
                    gateway TEXT NOT NULL,
                    batch TEXT NOT NULL,
                    idx INTEGER NOT NULL,
                    metric TEXT NOT NULL,
                    from_ts INTEGER NOT NULL,
                    to_ts INTEGER NOT NULL,
                    count INTEGER NOT NULL,
                    received_at INTEGER NOT NULL,
                    PRIMARY KEY (device_id, gateway, batch, idx)
                ) WITHOUT ROWID;
                -- Windows changed by recent batches, one row per batch (see WriteBackLog);
                -- folded into `windows` and emptied at each checkpoint.
                CREATE TABLE window_log (
                    seq INTEGER PRIMARY KEY,
                    data BLOB NOT NULL
                );
                CREATE TABLE batches (
                    gateway TEXT NOT NULL,
                    batch TEXT NOT NULL,
                    first_received_at INTEGER NOT NULL,
                    last_received_at INTEGER NOT NULL,
                    received INTEGER NOT NULL,
                    accepted INTEGER NOT NULL,
                    duplicates INTEGER NOT NULL,
                    late INTEGER NOT NULL,
                    conflicts INTEGER NOT NULL,
                    deliveries INTEGER NOT NULL DEFAULT 1,
                    PRIMARY KEY (gateway, batch)
                ) WITHOUT ROWID;
                """)
        }
        registerChangeFeedMigrations(&migrator)
        return migrator
    }
}
