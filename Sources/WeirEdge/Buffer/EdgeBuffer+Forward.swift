import Foundation
import GRDB
import WeirCompression
import WeirCore
import WeirSupport

/// A sealed chunk as the uplink reads it.
public struct StoredChunk: Sendable, Hashable {
    public var seq: Int64
    public var sealedAt: Int64
    public var readings: Int
    public var body: [UInt8]
}

/// A drop-ledger row waiting to be forwarded.
public struct StoredDrop: Sendable, Hashable {
    public var id: Int64
    public var record: DropRecord
}

extension EdgeBuffer {
    /// The next chunks to forward, in replay order, up to `maxBytes` of bodies and
    /// `maxReadings` readings (always at least one chunk when any is waiting).
    public func nextChunks(replay: EdgeConfiguration.ReplayOrder, maxBytes: Int64, maxReadings: Int) throws -> [StoredChunk] {
        let order = replay == .oldestFirst ? "ASC" : "DESC"
        return try pool.read { db in
            let cursor = try Row.fetchCursor(db, sql: "SELECT seq, sealed_at, readings, body FROM chunks ORDER BY seq \(order)")
            var out: [StoredChunk] = []
            var bytes: Int64 = 0
            var readings = 0
            while let row = try cursor.next() {
                let body: [UInt8] = Array(row["body"] as Data)
                let count: Int = row["readings"]
                if !out.isEmpty && (bytes + Int64(body.count) > maxBytes || readings + count > maxReadings) { break }
                out.append(StoredChunk(seq: row["seq"], sealedAt: row["sealed_at"], readings: count, body: body))
                bytes += Int64(body.count)
                readings += count
            }
            return out
        }
    }

    /// Drop-ledger rows not yet forwarded, oldest first.
    public func pendingDrops(limit: Int) throws -> [StoredDrop] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, device, metric, from_ts, to_ts, count FROM drops ORDER BY id LIMIT ?", arguments: [limit])
                .map { row in
                    StoredDrop(id: row["id"], record: DropRecord(device: row["device"], metric: row["metric"],
                                                                 from: row["from_ts"], to: row["to_ts"], count: row["count"]))
                }
        }
    }

    /// The cloud committed these chunks and drop rows: delete them and count.
    public func markForwarded(seqs: [Int64], dropIDs: [Int64], readings: Int, now: Int64 = WallClock.nowMs()) throws {
        let freed: Int64 = try pool.write { db in
            var freed: Int64 = 0
            for seq in seqs {
                freed += try Int64.fetchOne(db, sql: "SELECT bytes FROM chunks WHERE seq = ?", arguments: [seq]) ?? 0
                try db.execute(sql: "DELETE FROM chunks WHERE seq = ?", arguments: [seq])
            }
            for id in dropIDs { try db.execute(sql: "DELETE FROM drops WHERE id = ?", arguments: [id]) }
            try Self.addCounters(db, ["forwarded_readings": Int64(readings), "forwarded_chunks": Int64(seqs.count),
                                      "forwarded_batches": 1, "forwarded_drop_rows": Int64(dropIDs.count)])
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_forward_at', ?)", arguments: ["\(now)"])
            return freed
        }
        adjustBytes(-freed)
    }

    /// A chunk that does not decode: move it out of the queue, keep it, count it.
    public func quarantine(seq: Int64, reason: String, now: Int64 = WallClock.nowMs()) throws {
        let freed: Int64 = try pool.write { db in
            let bytes = try Int64.fetchOne(db, sql: "SELECT bytes FROM chunks WHERE seq = ?", arguments: [seq]) ?? 0
            try Self.moveToQuarantine(db, seq: seq, reason: reason, now: now)
            return bytes
        }
        adjustBytes(-freed)
    }

    /// The cloud refused these chunks for good (a 4xx other than 401/403/408/413/429):
    /// move them to `rejected` with the response, and count their readings
    /// (`rejected_readings`). The batch's drop-ledger rows are deleted and counted
    /// (`rejected_drop_rows`): a row the cloud refuses must not ride along with every
    /// later batch and get it refused too.
    public func reject(seqs: [Int64], dropIDs: [Int64], batch: String, status: Int, response: String, now: Int64 = WallClock.nowMs()) throws {
        let freed: Int64 = try pool.write { db in
            var freed: Int64 = 0
            var readings: Int64 = 0
            for seq in seqs {
                freed += try Int64.fetchOne(db, sql: "SELECT bytes FROM chunks WHERE seq = ?", arguments: [seq]) ?? 0
                readings += try Int64.fetchOne(db, sql: "SELECT readings FROM chunks WHERE seq = ?", arguments: [seq]) ?? 0
                try db.execute(sql: """
                    INSERT OR REPLACE INTO rejected (seq, batch, readings, status, response, rejected_at, body)
                    SELECT seq, ?, readings, ?, ?, ?, body FROM chunks WHERE seq = ?
                    """, arguments: [batch, status, String(response.prefix(4096)), now, seq])
                try db.execute(sql: "DELETE FROM chunks WHERE seq = ?", arguments: [seq])
            }
            // Drop rows travel with a batch; if it is refused they must not be resent forever.
            for id in dropIDs {
                try db.execute(sql: "DELETE FROM drops WHERE id = ?", arguments: [id])
            }
            try Self.addCounters(db, ["rejected_chunks": Int64(seqs.count), "rejected_readings": readings, "rejected_batches": 1,
                                      "rejected_drop_rows": Int64(dropIDs.count)])
            return freed
        }
        adjustBytes(-freed)
    }

    /// Records the broker connection's state for `status` and, when given, why it is not
    /// connected.
    public func setBrokerState(_ state: BrokerState, error: String?, now: Int64 = WallClock.nowMs()) throws {
        try setState(prefix: "mqtt", state.rawValue, error: error, now: now)
    }

    /// Records ingest's liveness for `status`: `starting`, `ok`, `stalled` (since when,
    /// epoch ms, and why) or `stopped`.
    public func setIngestState(_ state: IngestState, sinceMs: Int64?, reason: String?) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('ingest_state', ?), ('ingest_since', ?), ('ingest_reason', ?)",
                           arguments: [state.rawValue, sinceMs.map { "\($0)" } ?? "", reason.map { String($0.prefix(1000)) } ?? ""])
        }
    }

    /// Records the uplink's state for `status` and, when given, the error that goes with
    /// it (the last error stays until another replaces it).
    public func setUplinkState(_ state: UplinkState, error: String?, now: Int64 = WallClock.nowMs()) throws {
        try setState(prefix: "uplink", state.rawValue, error: error, now: now)
    }

    /// The weir-cloud URL the uplink sends to (of `uplink.url`'s list), for `status`.
    public func setUplinkURL(_ url: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('uplink_url', ?)", arguments: [url])
        }
    }

    /// `<prefix>_state`, and `<prefix>_last_error` / `_last_error_at` when an error is given.
    private func setState(prefix: String, _ state: String, error: String?, now: Int64) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: ["\(prefix)_state", state])
            if let error {
                try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?)",
                               arguments: ["\(prefix)_last_error", String(error.prefix(1000)), "\(prefix)_last_error_at", "\(now)"])
            }
        }
    }

    /// The batch being sent (chunk seqs and drop ids), kept so that after a restart the
    /// uplink resends exactly the same batch first: its drop rows then reach the cloud
    /// under the same id, and the cloud counts them once.
    public func setOutbox(seqs: [Int64], dropIDs: [Int64]) throws {
        let text = seqs.map(String.init).joined(separator: ",") + ";" + dropIDs.map(String.init).joined(separator: ",")
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('uplink_outbox', ?)", arguments: [text])
        }
    }

    /// The persisted outbox, limited to the chunks and drop rows that still exist.
    public func outbox() throws -> (chunks: [StoredChunk], drops: [StoredDrop])? {
        try pool.read { db in
            guard let text = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'uplink_outbox'"), !text.isEmpty else { return nil }
            let halves = text.split(separator: ";", omittingEmptySubsequences: false)
            let seqs = halves.first.map { $0.split(separator: ",").compactMap { Int64($0) } } ?? []
            let ids = halves.count > 1 ? halves[1].split(separator: ",").compactMap { Int64($0) } : []
            var chunks: [StoredChunk] = []
            for seq in seqs {
                if let row = try Row.fetchOne(db, sql: "SELECT seq, sealed_at, readings, body FROM chunks WHERE seq = ?", arguments: [seq]) {
                    chunks.append(StoredChunk(seq: row["seq"], sealedAt: row["sealed_at"], readings: row["readings"], body: Array(row["body"] as Data)))
                }
            }
            var drops: [StoredDrop] = []
            for id in ids {
                if let row = try Row.fetchOne(db, sql: "SELECT id, device, metric, from_ts, to_ts, count FROM drops WHERE id = ?", arguments: [id]) {
                    drops.append(StoredDrop(id: row["id"], record: DropRecord(device: row["device"], metric: row["metric"],
                                                                             from: row["from_ts"], to: row["to_ts"], count: row["count"])))
                }
            }
            if chunks.isEmpty && drops.isEmpty { return nil }
            return (chunks, drops)
        }
    }
}
