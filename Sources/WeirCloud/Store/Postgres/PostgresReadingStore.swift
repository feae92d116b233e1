import Foundation
import Logging
import Metrics
import PostgresNIO
import Synchronization
import WeirCore
import WeirSupport

/// The scale-out store: PostgreSQL through postgres-nio (`--store postgres://...`). Any
/// number of weir-cloud replicas may share one database and give the answers one
/// process gives.
///
/// ```swift
/// let store = try await PostgresReadingStore.open(url: "postgres://weir@db:5432/weir", settings: settings)
/// let outcome = try await store.apply(decoded, receivedAt: nowMs)
/// ```
///
/// **One batch, one transaction, a handful of statements.** ``Reconciler`` plans what a
/// batch needs; this store loads it in bulk (arrays bound to `unnest`), the reconciler
/// decides, and the store writes the decision in the same transaction:
/// 1. insert the batch's new devices, then lock all its device rows `FOR UPDATE` in id
///    order (two batches touching the same devices serialise per device and cannot
///    deadlock on each other) — the rows come back with the newest ts as of the lock;
/// 2. insert new series; load the stored readings no newer than their device's newest
///    (a live stream needs none), the stored windows the batch touches, and the batch's
///    drop-ledger rows stored before;
/// 3. write raw rows, window upserts, device counters, audit rows and the batch record.
///
/// Nothing is cached across transactions: every batch reads its devices' state under
/// the lock, so a batch applied by another replica (the same batch raced to two
/// replicas included) is seen by the next one, which finds its readings stored and
/// answers them as duplicates, exactly like a resend. A deadlock or serialization
/// failure reported anyway is retried (`weir_cloud_store_retries_total`).
///
/// Device and series keys are 63-bit prefixes of SHA-256 of their names, so every
/// replica computes them without a lookup, and every table is keyed by device first.
public final class PostgresReadingStore: ReadingStore {
    let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let location: PostgresLocation
    private let settings: ReconcileSettings
    private let reconciler: Reconciler
    private let keys = PostgresKeys()
    private let logger: Logger
    private let healthRecord: Mutex<StoreHealthRecord>
    private let retries = Counter(label: "weir_cloud_store_retries_total")
    /// How long one batch may wait for the database (a connection, a lock, its statements)
    /// before it is answered 503.
    private let batchTimeout: Duration
    static let maxAttempts = 5

    private init(location: PostgresLocation, settings: ReconcileSettings, logger: Logger, batchTimeout: Duration) {
        self.location = location
        self.client = PostgresClient(configuration: location.configuration, backgroundLogger: logger)
        let client = self.client
        self.runTask = Task { await client.run() }
        self.settings = settings
        self.reconciler = Reconciler(settings: settings)
        self.logger = logger
        self.batchTimeout = batchTimeout
        self.healthRecord = Mutex(StoreHealthRecord(maxUnfoldedBatches: .max, maxUnfoldedAgeMs: .max))
    }

    /// Connects, applies the schema migrations not yet applied (under a lock), and creates
    /// the raw partitions around now.
    public static func open(url: String, settings: ReconcileSettings, logger: Logger = Logger(label: "weir.cloud.store"),
                            batchTimeout: Duration = .seconds(15)) async throws -> PostgresReadingStore {
        let location = try PostgresLocation(url)
        let store = PostgresReadingStore(location: location, settings: settings, logger: logger, batchTimeout: batchTimeout)
        do {
            _ = try await withTimeout(.seconds(30), "connecting to \(location.description)") {
                try await PostgresSchema.migrate(store.client, logger: logger)
            }
            try await store.createPartitions()
        } catch {
            store.runTask.cancel()
            throw WeirError(.storage, "cannot open store \(location.description): \(Self.describe(error))")
        }
        return store
    }

    // MARK: ingest

    public func apply(_ decoded: DecodedBatch, receivedAt: Int64) async throws -> BatchOutcome {
        let plan = Reconciler.plan(decoded)
        let named = keys.keys(devices: plan.devices, series: plan.series)
        var attempt = 1
        while true {
            do {
                let outcome = try await withTimeout(batchTimeout, "committing batch \(decoded.batch.id)") {
                    try await self.client.withConnection { connection in
                        try await self.transaction(connection) { connection in
                            try await self.apply(decoded, plan: plan, named: named, receivedAt: receivedAt, connection)
                        }
                    }
                }
                keys.committed(devices: named.devices, series: Self.seriesKeys(plan, named))
                healthRecord.withLock { $0.committed(at: WallClock.nowMs(), unfoldedBatches: 0) }
                return outcome
            } catch let error where Self.isRetryable(error) && attempt < Self.maxAttempts {
                retries.increment()
                logger.debug("retrying a batch after a deadlock or serialization failure", metadata: [
                    "weir.batch": "\(decoded.batch.id)", "weir.attempt": "\(attempt)"])
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(10 * attempt))))
            } catch {
                healthRecord.withLock { $0.commitFailed(at: WallClock.nowMs(), WeirError(.storage, Self.describe(error))) }
                throw WeirError(.storage, "PostgreSQL: \(Self.describe(error))")
            }
        }
    }

    /// Runs `body` in one transaction on `connection`: committed if it returns, rolled back if it throws.
    private func transaction<T: Sendable>(_ connection: PostgresConnection,
                                          _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await connection.query("BEGIN", logger: logger)
        let result: T
        do {
            result = try await body(connection)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
        try await connection.query("COMMIT", logger: logger)
        return result
    }

    private func apply(_ decoded: DecodedBatch, plan: BatchPlan, named: (devices: [Int64], series: [Int64]), receivedAt: Int64,
                       _ connection: PostgresConnection) async throws -> BatchOutcome {
        let keys = try await loadKeys(plan, named: named, connection)
        let storedRaw = try await loadRaw(reconciler.rawLookups(decoded, plan: plan, keys: keys), connection)
        let folded = try reconciler.fold(decoded, plan: plan, keys: keys, storedRaw: storedRaw, receivedAt: receivedAt, logger: logger)
        // The raw rows are final once folded: their COPY text is made while the windows load.
        let raw = folded.changes.raw
        async let rows = raw.isEmpty ? nil : RawCopyText.encode(raw)
        let storedWindows = try await loadWindows(folded.windowLookups, connection)
        let storedLedger = decoded.batch.drops.isEmpty ? [] : try await loadLedger(decoded.batch, plan: plan, keys: keys, connection)
        let changes = try reconciler.decide(folded, storedWindows: storedWindows, storedLedger: storedLedger)
        // The other writes' parameters are encoded while the raw rows are copied.
        async let writes = Self.writes(changes)
        if let rows = await rows {
            // COPY: the fastest way in, and every row is new (decided under the device locks).
            try await connection.copyFrom(table: "raw", columns: ["device_id", "series_id", "ts", "value", "applied"],
                                          logger: logger) { writer in
                try await writer.write(rows)
            }
        }
        try await connection.query(try await writes, logger: logger)
        return changes.outcome
    }

    /// The series rows of `plan`, keyed by device and series (`named` are the plan's keys in order).
    private static func seriesKeys(_ plan: BatchPlan, _ named: (devices: [Int64], series: [Int64])) -> [PostgresKeys.SeriesKey] {
        zip(plan.seriesDevice, named.series).map { PostgresKeys.SeriesKey(device: named.devices[$0], series: $1) }
    }

    /// Creates the batch's devices and series not known to be stored, and locks its device
    /// rows in id order.
    private func loadKeys(_ plan: BatchPlan, named: (devices: [Int64], series: [Int64]),
                          _ connection: PostgresConnection) async throws -> BatchKeys {
        guard !plan.devices.isEmpty else { return BatchKeys() }
        var names: [Int64: String] = [:]
        for (name, id) in zip(plan.devices, named.devices) {
            if let other = names[id], other != name {
                throw WeirError(.storage, "devices \(name) and \(other) have the same key \(id); rename one")
            }
            names[id] = name
        }
        let seriesKeys = Self.seriesKeys(plan, named)
        let unknown = self.keys.unknown(devices: named.devices, series: seriesKeys)
        if !unknown.devices.isEmpty {
            try await connection.query("""
                INSERT INTO devices (id, name)
                SELECT * FROM unnest(\(unknown.devices.map { named.devices[$0] })::int8[], \(unknown.devices.map { plan.devices[$0] })::text[])
                ON CONFLICT (id) DO NOTHING
                """, logger: logger)
        }
        let rows = try await connection.query("""
            SELECT id, name, max_ts FROM devices WHERE id = ANY(\(named.devices.sorted())::int8[]) ORDER BY id FOR UPDATE
            """, logger: logger)
        var locked: [Int64: StoredDevice] = [:]
        for try await (id, name, maxTs) in rows.decode((Int64, String, Int64?).self) {
            guard names[id] == name else {
                throw WeirError(.storage, "devices \(name) and \(names[id] ?? "?") have the same key \(id); rename one")
            }
            locked[id] = StoredDevice(id: id, maxTs: maxTs)
        }
        let devices = named.devices.compactMap { locked[$0] }
        guard devices.count == plan.devices.count else {
            self.keys.forgetCommitted()
            throw WeirError(.storage, "PostgreSQL: \(plan.devices.count - devices.count) of the batch's devices were neither inserted nor found")
        }
        let keys = BatchKeys(devices: devices, series: named.series)
        if !unknown.series.isEmpty {
            try await connection.query("""
                INSERT INTO series (device_id, id, metric)
                SELECT * FROM unnest(\(unknown.series.map { seriesKeys[$0].device })::int8[], \(unknown.series.map { seriesKeys[$0].series })::int8[],
                                     \(unknown.series.map { plan.series[$0].metric })::text[])
                ON CONFLICT (device_id, id) DO NOTHING
                """, logger: logger)
        }
        return keys
    }

    private func loadRaw(_ lookups: [(deviceID: Int64, key: RawKey)], _ connection: PostgresConnection) async throws -> [RawKey: Double] {
        guard !lookups.isEmpty else { return [:] }
        var found: [RawKey: Double] = [:]
        let low = lookups.map(\.key.ts).min()!
        let high = lookups.map(\.key.ts).max()!
        // One index probe per key (LATERAL ... LIMIT 1 keeps the planner from hashing a
        // whole day's partition instead), in the partitions of the batch's ts range.
        let rows = try await connection.query("""
            SELECT r.series_id, r.ts, r.value
            FROM unnest(\(lookups.map(\.deviceID))::int8[], \(lookups.map(\.key.seriesID))::int8[], \(lookups.map(\.key.ts))::int8[])
                AS k(device_id, series_id, ts)
            CROSS JOIN LATERAL (
                SELECT r.series_id, r.ts, r.value FROM raw r
                WHERE r.device_id = k.device_id AND r.series_id = k.series_id AND r.ts = k.ts
                  AND r.ts BETWEEN \(low) AND \(high)
                LIMIT 1) r
            """, logger: logger)
        for try await (seriesID, ts, value) in rows.decode((Int64, Int64, Double).self) {
            found[RawKey(seriesID: seriesID, ts: ts)] = value
        }
        return found
    }

    private func loadWindows(_ lookups: [(deviceID: Int64, key: WindowKey)],
                             _ connection: PostgresConnection) async throws -> [WindowRecord?] {
        guard !lookups.isEmpty else { return [] }
        var found = [WindowRecord?](repeating: nil, count: lookups.count)
        // One index probe per window: a join would hash the whole table once it is large.
        let rows = try await connection.query("""
            SELECT k.n, w.size_ms, w.start, w.count, w.sum, w.min, w.max, w.first_ts, w.first_value,
                   w.last_ts, w.last_value, w.revision, w.late
            FROM unnest(\(lookups.map(\.deviceID))::int8[], \(lookups.map(\.key.seriesID))::int8[],
                        \(lookups.map(\.key.sizeMs))::int8[], \(lookups.map(\.key.start))::int8[])
                WITH ORDINALITY AS k(device_id, series_id, size_ms, start, n)
            CROSS JOIN LATERAL (
                SELECT * FROM windows w
                WHERE w.device_id = k.device_id AND w.series_id = k.series_id AND w.size_ms = k.size_ms AND w.start = k.start
                LIMIT 1) w
            """, logger: logger)
        for try await row in rows {
            let cells = row.makeRandomAccess()
            let record = try Self.windowRecord(cells, from: 1)
            let n = Int(try cells[0].decode(Int64.self))
            guard (1...lookups.count).contains(n) else { throw WeirError(.storage, "PostgreSQL answered window lookup \(n) of \(lookups.count)") }
            found[n - 1] = record
        }
        return found
    }

    private func loadLedger(_ batch: Batch, plan: BatchPlan, keys: BatchKeys, _ connection: PostgresConnection) async throws -> Set<Int> {
        let ids = Array(Set(plan.dropDevice.map { keys.devices[$0].id }))
        var stored = Set<Int>()
        let rows = try await connection.query("""
            SELECT idx FROM edge_drops WHERE device_id = ANY(\(ids)::int8[]) AND gateway = \(batch.gateway) AND batch = \(batch.id)
            """, logger: logger)
        for try await index in rows.decode(Int64.self) { stored.insert(Int(index)) }
        return stored
    }

    /// Every write of a batch but its raw rows, as one statement: windows, device counters,
    /// audit rows (data-modifying `WITH` parts), then the batch record.
    static func writes(_ changes: BatchChanges) throws -> PostgresQuery {
        var s = PostgresStatement()
        var parts: [String] = []
        let at = try s.bind(changes.receivedAt)
        let gateway = try s.bind(changes.gateway)
        let batch = try s.bind(changes.outcome.batch)
        if !changes.windows.isEmpty {
            let w = changes.windows
            parts.append("""
                windows_written AS (
                    INSERT INTO windows (device_id, series_id, size_ms, start, count, sum, min, max, first_ts, first_value,
                                         last_ts, last_value, revision, late)
                    SELECT * FROM unnest(\(try s.bind(w.map(\.deviceID)))::int8[], \(try s.bind(w.map(\.key.seriesID)))::int8[],
                        \(try s.bind(w.map(\.key.sizeMs)))::int8[], \(try s.bind(w.map(\.key.start)))::int8[],
                        \(try s.bind(w.map(\.record.aggregate.count)))::int8[], \(try s.bind(w.map(\.record.aggregate.sum)))::float8[],
                        \(try s.bind(w.map(\.record.aggregate.min)))::float8[], \(try s.bind(w.map(\.record.aggregate.max)))::float8[],
                        \(try s.bind(w.map(\.record.aggregate.firstTs)))::int8[], \(try s.bind(w.map(\.record.aggregate.firstValue)))::float8[],
                        \(try s.bind(w.map(\.record.aggregate.lastTs)))::int8[], \(try s.bind(w.map(\.record.aggregate.lastValue)))::float8[],
                        \(try s.bind(w.map(\.record.revision)))::int8[], \(try s.bind(w.map(\.record.late)))::int8[])
                    ON CONFLICT (device_id, series_id, size_ms, start) DO UPDATE SET
                        count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
                        first_ts = excluded.first_ts, first_value = excluded.first_value, last_ts = excluded.last_ts,
                        last_value = excluded.last_value, revision = excluded.revision, late = excluded.late)
                """)
        }
        if !changes.devices.isEmpty {
            let d = changes.devices
            let ids = try s.bind(d.map(\.id))
            // `d.id = ANY(ids)` lets the planner probe the key instead of hashing every device.
            parts.append("""
                devices_written AS (
                    UPDATE devices AS d SET max_ts = NULLIF(u.max_ts, \(try s.bind(Int64.min))), last_seen = GREATEST(d.last_seen, u.last_seen),
                        readings = d.readings + u.readings, duplicates = d.duplicates + u.duplicates, late = d.late + u.late,
                        conflicts = d.conflicts + u.conflicts, too_late = d.too_late + u.too_late,
                        dropped_late = d.dropped_late + u.dropped_late, dropped_at_edge = d.dropped_at_edge + u.dropped_at_edge
                    FROM unnest(\(ids)::int8[], \(try s.bind(d.map { $0.maxTs ?? Int64.min }))::int8[],
                                \(try s.bind(d.map(\.lastSeen)))::int8[], \(try s.bind(d.map(\.delta.readings)))::int8[],
                                \(try s.bind(d.map(\.delta.duplicates)))::int8[], \(try s.bind(d.map(\.delta.late)))::int8[],
                                \(try s.bind(d.map(\.delta.conflicts)))::int8[], \(try s.bind(d.map(\.delta.tooLate)))::int8[],
                                \(try s.bind(d.map(\.delta.droppedLate)))::int8[], \(try s.bind(d.map(\.delta.droppedAtEdge)))::int8[])
                        AS u(id, max_ts, last_seen, readings, duplicates, late, conflicts, too_late, dropped_late, dropped_at_edge)
                    WHERE d.id = u.id AND d.id = ANY(\(ids)::int8[]))
                """)
        }
        if !changes.lateDrops.isEmpty {
            let l = changes.lateDrops
            parts.append("""
                late_written AS (
                    INSERT INTO late_dropped (device_id, series_id, ts, value, watermark, received_at)
                    SELECT *, \(at)::int8 FROM unnest(\(try s.bind(l.map(\.deviceID)))::int8[], \(try s.bind(l.map(\.seriesID)))::int8[],
                        \(try s.bind(l.map(\.ts)))::int8[], \(try s.bind(l.map(\.value)))::float8[], \(try s.bind(l.map(\.watermark)))::int8[])
                    ON CONFLICT DO NOTHING)
                """)
        }
        if !changes.edgeDrops.isEmpty {
            let e = changes.edgeDrops
            parts.append("""
                edge_drops_written AS (
                    INSERT INTO edge_drops (device_id, gateway, batch, idx, metric, from_ts, to_ts, count, received_at)
                    SELECT u.device_id, \(gateway), \(batch), u.idx, u.metric, u.from_ts, u.to_ts, u.count, \(at)::int8
                    FROM unnest(\(try s.bind(e.map(\.deviceID)))::int8[], \(try s.bind(e.map { Int64($0.index) }))::int8[],
                                \(try s.bind(e.map(\.drop.metric)))::text[], \(try s.bind(e.map(\.drop.from)))::int8[],
                                \(try s.bind(e.map(\.drop.to)))::int8[], \(try s.bind(e.map(\.drop.count)))::int8[])
                        AS u(device_id, idx, metric, from_ts, to_ts, count)
                    ON CONFLICT DO NOTHING)
                """)
        }
        if !changes.rejectedRows.isEmpty {
            let r = changes.rejectedRows
            parts.append("""
                rejected_written AS (
                    INSERT INTO rejected (gateway, batch, idx, reason, raw, received_at)
                    SELECT \(gateway), \(batch), u.idx, u.reason, u.raw, \(at)::int8
                    FROM unnest(\(try s.bind(r.map { Int64($0.index) }))::int8[], \(try s.bind(r.map(\.reason)))::text[],
                                \(try s.bind(r.map(\.raw)))::text[]) AS u(idx, reason, raw)
                    ON CONFLICT DO NOTHING)
                """)
        }
        let o = changes.outcome
        let record = """
            INSERT INTO batches (gateway, batch, first_received_at, last_received_at, received, accepted, duplicates, late, conflicts)
            VALUES (\(gateway), \(batch), \(at), \(at), \(try s.bind(Int64(o.received))), \(try s.bind(Int64(o.accepted))),
                    \(try s.bind(Int64(o.duplicates))), \(try s.bind(Int64(o.late))), \(try s.bind(Int64(o.conflicts))))
            ON CONFLICT (gateway, batch) DO UPDATE SET last_received_at = excluded.last_received_at,
                deliveries = batches.deliveries + 1
            """
        return s.query(parts.isEmpty ? record : "WITH " + parts.joined(separator: ",\n") + "\n" + record)
    }

    // MARK: queries

    public func devices() async throws -> [DeviceSummary] {
        try await withTimeout(batchTimeout, "reading devices") {
            var summaries: [DeviceSummary] = []
            let rows = try await self.client.query("\(unescaped: Self.deviceColumns) ORDER BY name", logger: self.logger)
            for try await row in rows { summaries.append(try self.summary(row)) }
            return summaries
        }
    }

    public func device(named name: String) async throws -> DeviceSummary? {
        try await withTimeout(batchTimeout, "reading device \(name)") {
            let rows = try await self.client.query("""
                \(unescaped: Self.deviceColumns) WHERE id = \(Self.deviceID(name)) AND name = \(name)
                """, logger: self.logger)
            for try await row in rows { return try self.summary(row) }
            return nil
        }
    }

    public func windows(device: String, metric: String, sizeMs: Int64, from: Int64, to: Int64) async throws -> [WindowRecord]? {
        let deviceID = Self.deviceID(device)
        let seriesID = Self.seriesID(SeriesName(device: device, metric: metric))
        return try await withTimeout(batchTimeout, "reading windows of \(device)") {
            try await self.client.withConnection { connection in
                let known = try await connection.query("SELECT 1 FROM devices WHERE id = \(deviceID) AND name = \(device)",
                                                       logger: self.logger)
                var exists = false
                for try await _ in known { exists = true }
                guard exists else { return nil }
                let rows = try await connection.query("""
                    SELECT size_ms, start, count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late
                    FROM windows WHERE device_id = \(deviceID) AND series_id = \(seriesID) AND size_ms = \(sizeMs)
                      AND start >= \(from) AND start < \(to) ORDER BY start
                    """, logger: self.logger)
                var records: [WindowRecord] = []
                for try await row in rows { records.append(try Self.windowRecord(row.makeRandomAccess(), from: 0)) }
                return records
            }
        }
    }

    private static let deviceColumns = """
        SELECT name, last_seen, max_ts, readings, duplicates, late, conflicts, too_late, dropped_late, dropped_at_edge FROM devices
        """

    private func summary(_ row: PostgresRow) throws -> DeviceSummary {
        let (name, lastSeen, maxTs, readings, duplicates, late, conflicts, tooLate, droppedLate, droppedAtEdge) =
            try row.decode((String, Int64?, Int64?, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
        return DeviceSummary(device: name, lastSeen: lastSeen, watermark: maxTs.map { Watermark.of(newestTs: $0, maxOutOfOrderMs: settings.maxOutOfOrderMs) },
                             readings: readings, duplicates: duplicates, late: late, conflicts: conflicts, tooLate: tooLate,
                             droppedLate: droppedLate, droppedAtEdge: droppedAtEdge)
    }

    /// A window from columns `size_ms, start, count, ..., late` starting at column `first`.
    private static func windowRecord(_ cells: PostgresRandomAccessRow, from first: Int) throws -> WindowRecord {
        func int(_ i: Int) throws -> Int64 { try cells[first + i].decode(Int64.self) }
        func double(_ i: Int) throws -> Double { try cells[first + i].decode(Double.self) }
        let aggregate = WindowAggregate(count: try int(2), sum: try double(3), min: try double(4), max: try double(5),
                                        firstTs: try int(6), firstValue: try double(7), lastTs: try int(8), lastValue: try double(9))
        return WindowRecord(sizeMs: try int(0), start: try int(1), aggregate: aggregate, revision: try int(10), late: try int(11))
    }

    // MARK: maintenance

    /// Width of one raw partition.
    static let partitionMs: Int64 = 86_400_000

    /// Creates the day partitions of `raw` from `raw_retention` behind the newest reading
    /// (or now) to two days ahead. A day the default partition already holds rows of is
    /// left there (it is pruned row by row).
    func createPartitions() async throws {
        try await client.withConnection { connection in
            var newest = WallClock.nowMs()
            for try await ts in try await connection.query("SELECT max(max_ts) FROM devices", logger: self.logger).decode(Int64?.self) {
                if let ts { newest = max(newest, ts) }
            }
            var existing = Set<String>()
            for try await name in try await connection.query("""
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'raw'::regclass
                """, logger: self.logger).decode(String.self) {
                existing.insert(name)
            }
            let first = WindowMath.start(of: newest - self.settings.rawRetentionMs, size: Self.partitionMs)
            let last = WindowMath.start(of: newest, size: Self.partitionMs) + 2 * Self.partitionMs
            var day = first
            while day <= last {
                let name = "raw_p\(day / Self.partitionMs)"
                if !existing.contains(name) {
                    do {
                        try await connection.query(PostgresQuery(unsafeSQL: """
                            CREATE TABLE IF NOT EXISTS \(name) PARTITION OF raw FOR VALUES FROM (\(day)) TO (\(day + Self.partitionMs))
                            """), logger: self.logger)
                    } catch {
                        // Another replica created it, or the default partition holds rows of that day.
                        self.logger.debug("raw partition not created", metadata: ["weir.partition": "\(name)", "weir.error": "\(String(reflecting: error))"])
                    }
                }
                day += Self.partitionMs
            }
        }
    }

    /// Drops day partitions whose every reading is past `raw_retention` behind its
    /// device's newest reading, deletes such readings from the rest, and creates the
    /// partitions ahead. One replica at a time does it (an advisory lock); the others
    /// return 0.
    public func pruneRaw() async throws -> Int {
        let retention = settings.rawRetentionMs
        try await createPartitions()
        return try await client.withConnection { connection in
            var locked = false
            for try await got in try await connection.query("SELECT pg_try_advisory_lock(\(PostgresSchema.maintenanceLock))",
                                                            logger: self.logger).decode(Bool.self) {
                locked = got
            }
            guard locked else { return 0 }
            // The lock belongs to this connection's session: release it on this lease,
            // before the connection goes back to the pool, whatever happens.
            let unlock = "SELECT pg_advisory_unlock(\(PostgresSchema.maintenanceLock))"
            do {
                let deleted = try await self.prune(retention: retention, connection)
                try await connection.query(PostgresQuery(unsafeSQL: unlock), logger: self.logger)
                return deleted
            } catch {
                _ = try? await connection.query(PostgresQuery(unsafeSQL: unlock), logger: self.logger)
                throw error
            }
        }
    }

    /// Drops and deletes what is past retention (the caller holds the maintenance lock).
    private func prune(retention: Int64, _ connection: PostgresConnection) async throws -> Int {
        var deleted = 0
        var partitions: [(name: String, upper: Int64)] = []
        for try await name in try await connection.query("""
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'raw'::regclass AND c.relname LIKE 'raw_p%'
            """, logger: self.logger).decode(String.self) {
            if let day = Int64(name.dropFirst("raw_p".count)) { partitions.append((name, (day + 1) * Self.partitionMs)) }
        }
        for partition in partitions.sorted(by: { $0.upper < $1.upper }) {
            // Droppable when every device with rows in it is past its own cutoff at the partition's end.
            var droppable = false
            var rows: Int64 = 0
            for try await (count, oldestCutoff) in try await connection.query(PostgresQuery(unsafeSQL: """
                SELECT count(*), min(d.max_ts) - \(retention) FROM \(partition.name) r JOIN devices d ON d.id = r.device_id
                """), logger: self.logger).decode((Int64, Int64?).self) {
                rows = count
                droppable = count > 0 && (oldestCutoff.map { partition.upper <= $0 } ?? false)
            }
            if droppable {
                try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE \(partition.name)"), logger: self.logger)
                deleted += Int(rows)
                self.logger.info("dropped raw partition past raw_retention", metadata: [
                    "weir.partition": "\(partition.name)", "weir.readings": "\(rows)"])
            }
        }
        // What is left past retention (the default partition, days with a device still inside retention).
        guard let newest = try await connection.query("SELECT max(max_ts) FROM devices", logger: self.logger)
            .decode(Int64?.self).first(where: { _ in true }) ?? nil else { return deleted }
        for try await count in try await connection.query("""
            WITH gone AS (
                DELETE FROM raw r USING devices d
                WHERE r.ts < \(newest - retention) AND d.id = r.device_id AND r.ts < d.max_ts - \(retention)
                RETURNING 1)
            SELECT count(*) FROM gone
            """, logger: self.logger).decode(Int64.self) {
            deleted += Int(count)
        }
        return deleted
    }

    // MARK: health and lifecycle

    public func health() -> StoreHealth {
        healthRecord.withLock { $0.health(now: WallClock.nowMs()) }
    }

    public func close() async throws {
        runTask.cancel()
        await runTask.value
    }

    // MARK: keys and helpers

    static func deviceID(_ name: String) -> Int64 { PostgresKeys.deviceID(name) }

    static func seriesID(_ name: SeriesName) -> Int64 { PostgresKeys.seriesID(name) }

    /// Deadlock (40P01) and serialization failure (40001): the transaction can be retried.
    static func isRetryable(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    /// What went wrong, with PostgreSQL's own message when it sent one.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "\(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
            }
            return "\(error.code)\(error.underlying.map { ": \($0)" } ?? "")"
        }
        if let error = error as? WeirError { return error.message }
        return "\(error)"
    }
}

/// Runs `body`, failing with a storage error naming `what` if it takes longer than `limit`.
func withTimeout<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            throw WeirError(.storage, "\(what) took longer than \(limit) (is PostgreSQL up?)")
        }
        return result
    }
}
