import Foundation
import GRDB
import WeirCompression
import WeirCore
import WeirSupport

extension EdgeBuffer {
    /// Merges the oldest run of small chunks into one, when a backlog has built up (the
    /// cloud is away or slow). Chunks sealed every 100 ms hold about one reading per
    /// series; merged, each series has many, and the codec's delta-of-delta and XOR
    /// columns pay off: the backlog takes several times less disk.
    ///
    /// The merged chunk keeps the first chunk's sequence number and the readings' order,
    /// so replay order does not change. Chunks in `excluding` (being sent) and in the
    /// uplink's persisted outbox are never touched. A run that reaches the newest chunk is
    /// merged only once it is nearly `targetReadings` or `minChunks` chunks long (more are
    /// coming while the backlog builds). Returns how many chunks were merged away (0 when
    /// there was nothing worth doing).
    @discardableResult
    public func compact(targetReadings: Int, minChunks: Int, excluding: Set<Int64>, now: Int64 = WallClock.nowMs()) throws -> Int {
        try pool.write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM chunks") ?? 0
            guard count >= minChunks else { return 0 }
            var skip = excluding
            if let outbox = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'uplink_outbox'") {
                for seq in outbox.split(separator: ";", omittingEmptySubsequences: false).first?.split(separator: ",") ?? [] {
                    if let s = Int64(seq) { skip.insert(s) }
                }
            }
            let rows = try Row.fetchAll(db, sql: "SELECT seq, sealed_at, readings, bytes, min_ts, max_ts FROM chunks ORDER BY seq LIMIT 256")
            // The first run of at least two consecutive small chunks that fits the target.
            var run: [Row] = []
            var total = 0
            var closed = false
            for row in rows {
                let seq: Int64 = row["seq"]
                let readings: Int = row["readings"]
                let small = readings < targetReadings / 2
                if skip.contains(seq) || !small || total + readings > targetReadings {
                    if run.count >= 2 {
                        closed = true
                        break
                    }
                    run = []
                    total = 0
                    if skip.contains(seq) || !small { continue }
                }
                run.append(row)
                total += readings
            }
            // A run that ends at the newest chunk can still grow: while more chunks are being
            // sealed, merging it now would leave a middling chunk that is no longer "small",
            // and the backlog would settle at a third less readings per chunk (and about 15%
            // more bytes per reading). It waits until it is nearly full or `minChunks` long.
            let open = !closed && rows.count < 256
            guard run.count >= 2, !open || run.count >= minChunks || total >= targetReadings - targetReadings / 8 else { return 0 }

            // Merged as columns (no `Reading` per reading): a 50,000-reading merge needs about
            // 2.5 MB instead of 4.
            var merger = BatchMerger(reservingReadings: total)
            var oldBytes: Int64 = 0
            for row in run {
                let seq: Int64 = row["seq"]
                guard let body = try Data.fetchOne(db, sql: "SELECT body FROM chunks WHERE seq = ?", arguments: [seq]) else { return 0 }
                // A chunk that does not decode is left for the uplink to quarantine.
                guard (try? merger.add(WireBatch.unwrap(Array(body), maxSize: EdgeBuffer.maxChunkDecodedBytes),
                                       expecting: row["readings"] as Int)) != nil else { return 0 }
                oldBytes += row["bytes"] as Int64
            }
            let mergedReadings = merger.readingCount
            let minTs = run.map { $0["min_ts"] as Int64 }.min() ?? 0
            let maxTs = run.map { $0["max_ts"] as Int64 }.max() ?? 0
            let raw = merger.encode(gateway: gateway, id: "chunk", drops: [])
            _ = consume merger  // freed before zstd allocates its tables
            let merged = try WireBatch.wrap(raw)
            guard Int64(merged.count) < oldBytes else { return 0 }
            let first: Int64 = run[0]["seq"]
            let sealedAt = run.map { $0["sealed_at"] as Int64 }.min() ?? now
            for row in run {
                try db.execute(sql: "DELETE FROM chunks WHERE seq = ?", arguments: [row["seq"] as Int64])
            }
            try db.execute(sql: "INSERT INTO chunks (seq, sealed_at, readings, bytes, min_ts, max_ts, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [first, sealedAt, mergedReadings, merged.count, minTs, maxTs, Data(merged)])
            try Self.addCounters(db, ["compacted_chunks": Int64(run.count - 1)])
            adjustBytes(Int64(merged.count) - oldBytes)
            return run.count - 1
        }
    }
}
