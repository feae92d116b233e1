import Foundation
import GRDB
import Synchronization
import WeirCore

/// The changefeed's shared state beside the store: the notifier for long polls and the
/// series names (a series' device and metric never change, so they are cached for good).
final class ChangeFeedState: Sendable {
    let notifier = ChangeNotifier()
    let names = Mutex<[Int64: (device: String, metric: String)]>([:])
}

extension SQLiteReadingStore: ChangeFeedSource {
    /// `window_changes` (see ``ChangeLog``), added after v1.
    static func registerChangeFeedMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-window-changes") { db in
            try db.execute(sql: """
                -- The changefeed: one row per batch, cursors key ..< key + count (see ChangeLog).
                CREATE TABLE window_changes (
                    cursor INTEGER PRIMARY KEY,
                    count INTEGER NOT NULL,
                    committed_at INTEGER NOT NULL,
                    data BLOB NOT NULL
                );
                """)
        }
    }

    public var latestCursor: Int64 { feed.notifier.latest }

    public func waitForChanges(after: Int64, timeout: Duration) async {
        await feed.notifier.wait(after: after, timeout: timeout)
    }

    public func changes(after: Int64, limit: Int) async throws -> ChangeFeedPage {
        let limit = max(1, limit)
        let feed = self.feed
        return try await readCommitted { db in
            guard let oldest = try Int64.fetchOne(db, sql: "SELECT MIN(cursor) FROM window_changes") else {
                return .changes([], next: after)
            }
            // Cursor c is kept from `oldest` on; asking after c needs c + 1 kept.
            if after + 1 < oldest {
                return .gone(oldest: oldest)
            }
            let rowStart = try Int64.fetchOne(db, sql: "SELECT MAX(cursor) FROM window_changes WHERE cursor <= ?", arguments: [after + 1]) ?? oldest
            let rows = try Row.fetchCursor(db, sql: "SELECT cursor, count, committed_at, data FROM window_changes WHERE cursor >= ? ORDER BY cursor",
                                           arguments: [rowStart])
            var changes: [WindowChange] = []
            var next = after
            scan: while let row = try rows.next() {
                let first: Int64 = row[0]
                let count: Int = row[1]
                let committedAt: Int64 = row[2]
                if first + Int64(count) <= after + 1 { continue }
                let decoded = try ChangeLog.decode(row[3], count: count)
                for (i, change) in decoded.enumerated() {
                    let cursor = first + Int64(i)
                    guard cursor > after else { continue }
                    let (device, metric) = try Self.names(of: change.seriesID, db, feed)
                    changes.append(WindowChange(cursor: cursor, device: device, metric: metric, record: change.record,
                                                closed: change.closed, committedAt: committedAt))
                    next = cursor
                    if changes.count >= limit { break scan }
                }
            }
            return .changes(changes, next: next)
        }
    }

    private static func names(of seriesID: Int64, _ db: Database, _ feed: ChangeFeedState) throws -> (device: String, metric: String) {
        if let known = feed.names.withLock({ $0[seriesID] }) { return known }
        guard let row = try Row.fetchOne(db, sql: """
            SELECT devices.name, series.metric FROM series JOIN devices ON devices.id = series.device_id WHERE series.id = ?
            """, arguments: [seriesID]) else {
            throw WeirError(.storage, "changefeed: series \(seriesID) is unknown")
        }
        let names = (device: row[0] as String, metric: row[1] as String)
        feed.names.withLock { $0[seriesID] = names }
        return names
    }

    /// Deletes changes committed more than `retentionMs` ago, always keeping the newest row
    /// (it carries the next cursor across restarts). Returns how many rows went.
    static func pruneChanges(_ db: Database, retentionMs: Int64, nowMs: Int64) throws -> Int {
        try db.execute(sql: """
            DELETE FROM window_changes WHERE committed_at < ? AND cursor < (SELECT MAX(cursor) FROM window_changes)
            """, arguments: [nowMs - retentionMs])
        return db.changesCount
    }
}
