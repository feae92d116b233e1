import GRDB
import WeirCore

/// One gateway's line in the fleet page's header.
public struct GatewayActivity: Sendable, Hashable {
    public var gateway: String
    /// Batches received in the last hour (wall clock), resends counted once.
    public var batchesLastHour: Int64
    /// Readings accepted from it in the last minute.
    public var acceptedLastMinute: Int64
    /// When its last batch arrived, epoch ms.
    public var lastBatchAt: Int64?
}

/// What the dashboard reads from a store besides the query API.
public protocol DashboardSource: Sendable {
    /// The metrics a device has sent, sorted.
    func metrics(device: String) async throws -> [String]
    /// Per gateway: batches of the last hour, readings of the last minute, last batch time.
    func gatewayActivity(nowMs: Int64) async throws -> [GatewayActivity]
}

extension SQLiteReadingStore: DashboardSource {
    public func metrics(device: String) async throws -> [String] {
        try await readCommitted { db in
            try String.fetchAll(db, sql: """
                SELECT series.metric FROM series JOIN devices ON devices.id = series.device_id
                WHERE devices.name = ? ORDER BY series.metric
                """, arguments: [device])
        }
    }

    public func gatewayActivity(nowMs: Int64) async throws -> [GatewayActivity] {
        try await readCommitted { db in
            // One pass over `batches` (keyed by gateway, batch); kept small by nothing yet.
            try Row.fetchAll(db, sql: """
                SELECT gateway,
                       SUM(CASE WHEN first_received_at >= ? THEN 1 ELSE 0 END),
                       SUM(CASE WHEN first_received_at >= ? THEN accepted ELSE 0 END),
                       MAX(last_received_at)
                FROM batches GROUP BY gateway ORDER BY gateway
                """, arguments: [nowMs - 3_600_000, nowMs - 60_000]).map {
                GatewayActivity(gateway: $0[0], batchesLastHour: $0[1], acceptedLastMinute: $0[2], lastBatchAt: $0[3])
            }
        }
    }
}
