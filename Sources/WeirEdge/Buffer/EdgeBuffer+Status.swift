import Foundation
import GRDB
import WeirSupport

extension EdgeBuffer {
    /// The status snapshot (a read transaction; works while the edge runs).
    public func status(now: Int64 = WallClock.nowMs()) throws -> EdgeStatus {
        try pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(readings), 0) AS r, COALESCE(SUM(bytes), 0) AS b, MIN(sealed_at) AS oldest FROM chunks")
            let chunks: Int = row?["n"] ?? 0
            let readings: Int64 = row?["r"] ?? 0
            let bytes: Int64 = row?["b"] ?? 0
            let oldest: Int64? = row?["oldest"]
            var meta: [String: String] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT key, value FROM meta") { meta[r["key"]] = r["value"] }
            var counters: [String: Int64] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT name, value FROM counters") { counters[r["name"]] = r["value"] }
            var deviceCounters: [String: [String: Int64]] = [:]
            if try db.tableExists("device_counters") { // absent in a file no edge of this version has opened yet
                for r in try Row.fetchAll(db, sql: "SELECT device, name, value FROM device_counters") {
                    deviceCounters[r["device"] as String, default: [:]][r["name"] as String] = r["value"]
                }
            }
            // A file no edge of this version has written to has no `kind` column yet: its
            // notes are the rows whose reason starts "replaced: " (see EdgeBuffer+Migrations.swift).
            let isNote = try Self.hasDeadLetterKind(db) ? "kind = 'clock_note'" : Self.legacyClockNote
            let letterRows = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(\(isNote)), 0) AS notes FROM dead_letters")
            let rows: Int = letterRows?["n"] ?? 0
            let noteRows: Int = letterRows?["notes"] ?? 0
            let oldestAge = oldest.map { max(0, now - $0) } ?? 0
            let rejected = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(readings), 0) AS r FROM rejected")
            let lastRejection = try Row.fetchOne(db, sql: "SELECT batch, status, response FROM rejected ORDER BY rejected_at DESC, seq DESC LIMIT 1")
                .map { r -> String in
                    let batch: String = r["batch"], status: Int = r["status"], response: String = r["response"]
                    return "batch \(batch) refused with HTTP \(status): \(response.prefix(300))"
                }
            return EdgeStatus(
                gateway: meta["gateway"] ?? gateway,
                chunks: chunks, readings: readings, bytes: bytes,
                oldestAgeMs: oldestAge,
                sinceLastForwardMs: meta["last_forward_at"].flatMap(Int64.init).map { max(0, now - $0) },
                forwardLagMs: oldestAge,
                pendingDropRows: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM drops") ?? 0,
                quarantinedChunks: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM quarantine") ?? 0,
                rejectedChunks: rejected?["n"] ?? 0,
                rejectedReadings: rejected?["r"] ?? 0,
                lastRejection: lastRejection,
                deadLetterRows: rows - noteRows,
                clockNoteRows: noteRows,
                uplinkState: meta["uplink_state"] ?? UplinkState.idle.rawValue,
                uplinkURL: meta["uplink_url"],
                lastUplinkError: meta["uplink_last_error"],
                lastUplinkErrorAt: meta["uplink_last_error_at"].flatMap(Int64.init),
                brokerState: meta["mqtt_state"] ?? BrokerState.unknown.rawValue,
                lastBrokerError: meta["mqtt_last_error"],
                lastBrokerErrorAt: meta["mqtt_last_error_at"].flatMap(Int64.init),
                ingestState: meta["ingest_state"].flatMap(IngestState.init) ?? .unknown,
                ingestStalledSince: meta["ingest_since"].flatMap(Int64.init),
                ingestReason: meta["ingest_reason"].flatMap { $0.isEmpty ? nil : $0 },
                counters: counters,
                deviceCounters: deviceCounters)
        }
    }

    /// The newest `limit` rows of the dead-letter table (dead letters and clock notes,
    /// each with its `kind`), newest first.
    public func deadLetters(limit: Int) throws -> [DeadLetter] {
        try pool.read { db in
            let kind = try Self.hasDeadLetterKind(db)
                ? "kind" : "CASE WHEN \(Self.legacyClockNote) THEN 'clock_note' ELSE 'dead_letter' END"
            return try Row.fetchAll(db, sql: "SELECT at, topic, payload, reason, \(kind) AS kind FROM dead_letters ORDER BY id DESC LIMIT ?",
                                    arguments: [limit])
                .map { row in
                    DeadLetter(at: row["at"], topic: row["topic"], payload: Array(row["payload"] as Data), reason: row["reason"],
                               kind: DeadLetter.Kind(rawValue: row["kind"]) ?? .deadLetter)
                }
        }
    }
}
