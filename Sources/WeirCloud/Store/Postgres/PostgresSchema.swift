import Logging
import PostgresNIO
import WeirCore

/// The PostgreSQL schema, as numbered migrations applied once each, in order, under an
/// advisory lock: however many replicas start at the same moment, one applies them and
/// the others find them applied.
///
/// Every table is keyed by device first (`device_id`, a hash of the device name, so any
/// replica computes it without a lookup), and every statement of a batch names the
/// devices it touches: on Citus each table is distributed by `device_id`
/// (docs/scale-out.md). `raw` is partitioned by day on `ts`, so `raw_retention` drops
/// whole partitions; a default partition takes readings outside the days created ahead.
enum PostgresSchema {
    /// Key of the advisory lock that serialises migrations across replicas.
    static let migrationLock: Int64 = 0x5745_4952_0001  // "WEIR" 1
    /// Key of the advisory lock one replica holds while it maintains partitions and prunes.
    static let maintenanceLock: Int64 = 0x5745_4952_0002

    static let migrations: [(version: Int, sql: [String])] = [
        (1, [
            """
            CREATE TABLE devices (
                id bigint PRIMARY KEY,
                name text NOT NULL,
                max_ts bigint,
                last_seen bigint,
                readings bigint NOT NULL DEFAULT 0,
                duplicates bigint NOT NULL DEFAULT 0,
                late bigint NOT NULL DEFAULT 0,
                conflicts bigint NOT NULL DEFAULT 0,
                too_late bigint NOT NULL DEFAULT 0,
                dropped_late bigint NOT NULL DEFAULT 0,
                dropped_at_edge bigint NOT NULL DEFAULT 0
            )
            """,
            """
            CREATE TABLE series (
                device_id bigint NOT NULL,
                id bigint NOT NULL,
                metric text NOT NULL,
                PRIMARY KEY (device_id, id)
            )
            """,
            """
            CREATE TABLE raw (
                device_id bigint NOT NULL,
                series_id bigint NOT NULL,
                ts bigint NOT NULL,
                value double precision NOT NULL,
                applied boolean NOT NULL DEFAULT true,
                PRIMARY KEY (device_id, series_id, ts)
            ) PARTITION BY RANGE (ts)
            """,
            "CREATE TABLE raw_default PARTITION OF raw DEFAULT",
            """
            CREATE TABLE windows (
                device_id bigint NOT NULL,
                series_id bigint NOT NULL,
                size_ms bigint NOT NULL,
                start bigint NOT NULL,
                count bigint NOT NULL,
                sum double precision NOT NULL,
                min double precision NOT NULL,
                max double precision NOT NULL,
                first_ts bigint NOT NULL,
                first_value double precision NOT NULL,
                last_ts bigint NOT NULL,
                last_value double precision NOT NULL,
                revision bigint NOT NULL DEFAULT 0,
                late bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (device_id, series_id, size_ms, start)
            )
            """,
            """
            CREATE TABLE late_dropped (
                device_id bigint NOT NULL,
                series_id bigint NOT NULL,
                ts bigint NOT NULL,
                value double precision NOT NULL,
                watermark bigint NOT NULL,
                received_at bigint NOT NULL,
                PRIMARY KEY (device_id, series_id, ts)
            )
            """,
            """
            CREATE TABLE edge_drops (
                device_id bigint NOT NULL,
                gateway text NOT NULL,
                batch text NOT NULL,
                idx bigint NOT NULL,
                metric text NOT NULL,
                from_ts bigint NOT NULL,
                to_ts bigint NOT NULL,
                count bigint NOT NULL,
                received_at bigint NOT NULL,
                PRIMARY KEY (device_id, gateway, batch, idx)
            )
            """,
            // Keyed by gateway: on Citus these two are distributed by gateway (a batch's
            // record and its rejected rows live on one shard).
            """
            CREATE TABLE rejected (
                gateway text NOT NULL,
                batch text NOT NULL,
                idx bigint NOT NULL,
                reason text NOT NULL,
                raw text NOT NULL,
                received_at bigint NOT NULL,
                PRIMARY KEY (gateway, batch, idx)
            )
            """,
            """
            CREATE TABLE batches (
                gateway text NOT NULL,
                batch text NOT NULL,
                first_received_at bigint NOT NULL,
                last_received_at bigint NOT NULL,
                received bigint NOT NULL,
                accepted bigint NOT NULL,
                duplicates bigint NOT NULL,
                late bigint NOT NULL,
                conflicts bigint NOT NULL,
                deliveries bigint NOT NULL DEFAULT 1,
                PRIMARY KEY (gateway, batch)
            )
            """,
        ]),
        // Every batch rewrites its windows and device rows: free room in each page lets
        // PostgreSQL update them in place (HOT), without new index entries.
        (2, [
            "ALTER TABLE windows SET (fillfactor = 70)",
            "ALTER TABLE devices SET (fillfactor = 50)",
        ]),
    ]

    /// Applies the migrations not yet applied, under the migration lock, each in its own
    /// transaction with its version row. Returns the versions this call applied.
    @discardableResult
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(migrationLock))", logger: logger)
            do {
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS weir_schema_migrations (
                        version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                    """, logger: logger)
                var applied = Set<Int>()
                for try await version in try await connection.query("SELECT version FROM weir_schema_migrations", logger: logger)
                    .decode(Int.self) {
                    applied.insert(version)
                }
                if let newest = applied.max(), newest > migrations.last?.version ?? 0 {
                    throw WeirError(.storage, "the PostgreSQL schema is at version \(newest), newer than this weir-cloud knows (\(migrations.last?.version ?? 0)); run a newer weir-cloud")
                }
                var done: [Int] = []
                for migration in migrations where !applied.contains(migration.version) {
                    try await connection.withTransaction(logger: logger) { connection in
                        for statement in migration.sql {
                            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await connection.query("INSERT INTO weir_schema_migrations (version) VALUES (\(migration.version))", logger: logger)
                    }
                    logger.info("applied PostgreSQL schema migration", metadata: ["weir.version": "\(migration.version)"])
                    done.append(migration.version)
                }
                try await connection.query("SELECT pg_advisory_unlock(\(migrationLock))", logger: logger)
                return done
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(migrationLock))", logger: logger)
                throw error
            }
        }
    }
}
