import Foundation
import GRDB
import Testing
import WeirCompression
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport
import WeirSupport
import WeirWire

/// A batch the real weir-cloud refuses for good (a 4xx other than 401/403/408/413/429):
/// its chunks go to the edge's `rejected` table with the response, are not resent, are
/// not deleted, show in `weir-edge status`, and the uplink goes on with later data.
@Suite("weir-edge rejected batches end to end", .serialized)
struct EdgeRejectedEndToEndTests {
    /// The readings of the rejected table's chunks (each body decoded), by reading index
    /// (the test's values are the indices), with each row's HTTP status and response.
    func rejectedRows(_ path: String) throws -> (indices: Set<Int>, readings: Int, rows: [(status: Int, response: String, batch: String)]) {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in
            var indices = Set<Int>()
            var readings = 0
            var rows: [(Int, String, String)] = []
            for row in try Row.fetchAll(db, sql: "SELECT batch, readings, status, response, body FROM rejected ORDER BY seq") {
                let batch = try WireBatch.decode(Array(row["body"] as Data), maxSize: 64 << 20)
                let count: Int = row["readings"]
                #expect(batch.readings.count == count, "a rejected chunk's body does not hold its readings")
                for r in batch.readings { indices.insert(Int(r.value)) }
                readings += count
                rows.append((row["status"], row["response"], row["batch"]))
            }
            return (indices, readings, rows)
        }
    }

    @Test("a batch the cloud answers 400: chunks kept in the rejected table with the response, counted in status, not resent; later data still flows")
    func otherClientErrorRejects() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            try await h.startEdge()
            let pub = try await h.publisher()
            // 1. Good data flows.
            try await h.publish(0..<200, with: pub)
            #expect(try await h.waitForCloudCount(200, devices: 4) == 200)

            // 2. The cloud goes away; a backlog builds in two bursts, so that the second
            //    burst is outside the batch the uplink is already retrying (its outbox).
            await h.cloud?.stop()
            try await h.publish(200..<400, with: pub)
            _ = try await h.waitForStatus { $0.readings >= 200 && $0.uplinkState == "retrying" }
            try await h.publish(400..<600, with: pub)
            let backlog = try await h.waitForStatus { $0.readings >= 400 }
            #expect(backlog.readings == 400)
            #expect(await h.edge?.stop() == .exited(0))

            // 3. A drop-ledger row the cloud will refuse: a loss of 2·10¹² readings, over the
            //    cloud's limit (a damaged ledger, or an edge and a cloud that disagree on what
            //    is valid). The batch carrying it gets a real "400 Bad Request".
            let queue = try DatabaseQueue(path: h.bufferPath)
            try await queue.write { db in
                try db.execute(sql: "INSERT INTO drops (device, metric, from_ts, to_ts, count, recorded_at) VALUES ('d0', 'temp', ?, ?, ?, ?)",
                               arguments: [h.baseTs, h.baseTs + 1, 2_000_000_000_000 as Int64, WallClock.nowMs()])
            }
            try queue.close()

            try await h.startCloud()
            try await h.startEdge()
            let refused = try await h.waitForStatus { $0.chunks == 0 && $0.pendingDropRows == 0 && $0.rejectedChunks > 0 }
            #expect(refused.rejectedChunks > 0, "nothing rejected: \(refused.text)\n\(h.logs())")
            #expect(refused.pendingDropRows == 0, "the refused ledger row is being resent")

            // 4. Later data still flows: the uplink is not stuck behind the refusal.
            try await h.publish(600..<800, with: pub)
            let done = try await h.waitForStatus { ($0.counters["forwarded_readings"] ?? 0) + $0.rejectedReadings >= 800 && $0.chunks == 0 }
            await pub.disconnect()

            // What was refused: the chunks sit in the rejected table, bodies intact, with
            // the cloud's answer naming the problem.
            let rejected = try rejectedRows(h.bufferPath)
            print("rejected: \(rejected.readings) readings in \(rejected.rows.count) chunks; forwarded \(done.counters["forwarded_readings"] ?? 0)")
            #expect(rejected.readings > 0)
            #expect(rejected.indices.count == rejected.readings, "a reading is in the rejected table twice")
            #expect(rejected.indices.isSuperset(of: 400..<600), "the second burst rode with the refused ledger row")
            #expect(rejected.indices.allSatisfy { (200..<600).contains($0) }, "only the outage's backlog was in the refused batch")
            for row in rejected.rows {
                #expect(row.status == 400)
                #expect(row.response.contains("not a valid drop-ledger row"), "\(row.response)")
            }
            #expect(Set(rejected.rows.map(\.batch)).count == 1, "one batch refused, once")

            // Status counts them (chunks, readings, the response); nothing was resent.
            #expect(done.rejectedReadings == Int64(rejected.readings))
            #expect(done.counters["rejected_readings"] == Int64(rejected.readings))
            #expect(done.counters["rejected_batches"] == 1, "the refused batch was retried: \(done.text)")
            #expect(done.counters["rejected_drop_rows"] == 1)
            #expect(done.lastRejection?.contains("HTTP 400") == true)
            #expect(done.uplinkState == "ok")
            let shown = try await EdgeProcess.runCommand(["status", "--config", h.configPath], in: h.dir.path)
            #expect(shown.status == 0)
            let line = shown.stdout.split(separator: "\n").first { $0.hasPrefix("rejected chunks:") }.map(String.init) ?? ""
            #expect(line.contains("\(rejected.rows.count) (\(rejected.readings) readings"), "\(shown.stdout)")
            #expect(line.contains("HTTP 400") && line.contains("not a valid drop-ledger row"), "\(line)")

            // Accounting: accepted = forwarded + rejected (nothing evicted), and the cloud
            // holds exactly the readings that were not refused, each once.
            let accepted = done.counters["accepted_readings"] ?? 0
            let forwarded = done.counters["forwarded_readings"] ?? 0
            #expect(accepted == 800)
            #expect((done.counters["evicted_readings"] ?? 0) == 0)
            #expect(accepted == forwarded + done.rejectedReadings, "accepted \(accepted) != forwarded \(forwarded) + rejected \(done.rejectedReadings)")
            let inCloud = try await h.waitForCloudCount(forwarded, devices: 4)
            #expect(inCloud == forwarded)
            let expected = h.expectedWindows((0..<800).filter { !rejected.indices.contains($0) }, devices: 4)
            for (device, rows) in try await h.windows(devices: 4, size: "1s") {
                #expect(rows.count == expected[device]?.count ?? 0, "\(device)")
                for w in rows {
                    #expect(w.count == expected[device]?[w.start]?.count, "\(device) \(w.start)")
                    #expect(w.sum == expected[device]?[w.start]?.sum, "\(device) \(w.start)")
                }
            }
        }
    }
    @Test("a 413 split: the pieces the cloud commits are forwarded even when a later piece cannot be sent, and only that piece is rejected")
    func splitPiecesCommittedBeforeARefusalAreForwarded() async throws {
        try await withEdgeHarness { h in
            // JSON bodies (not compressed) and chunks of one reading each: the backlog is one
            // batch of 13 chunks, which a 220-byte cap splits down to single chunks. The 7th
            // reading has 128-byte device and metric names: its body alone is over the cap.
            try await h.startEdge(environment: ["WEIR_EDGE_UPLINK_FORMAT": "json", "WEIR_EDGE_BUFFER_CHUNK_MAX_READINGS": "1"])
            let pub = try await h.publisher()
            let long = "L" + String(repeating: "x", count: 127)
            let metric = String(repeating: "m", count: 128)
            for i in 0..<13 {
                if i == 6 {
                    try await pub.publish(topic: "devices/\(long)/telemetry", payload: Array("{\"ts\": \(h.baseTs + 6), \"\(metric)\": 999}".utf8), qos: 1)
                } else {
                    let m = h.reading(i, devices: 4)
                    try await pub.publish(topic: m.topic, payload: m.payload, qos: 1)
                }
                // Sealed on its own before the next one comes.
                _ = try await h.waitForStatus { $0.chunks >= i + 1 }
            }
            let backlog = try h.status()
            #expect(backlog.chunks == 13 && backlog.readings == 13, "\(backlog.text)")

            try await h.startCloud(extraConfig: "max_body: 220\n")
            let done = try await h.waitForStatus { $0.chunks == 0 }
            await pub.disconnect()
            #expect(h.edge?.process.standardError.contains("cloud said 413") == true, "the cap was never hit")

            // Only the long reading's chunk is rejected; the 12 others reach the cloud, each
            // once, and count as forwarded: accepted = forwarded + rejected.
            let rejected = try rejectedRows(h.bufferPath)
            #expect(rejected.indices == [999], "rejected: \(rejected.indices.sorted())")
            #expect(rejected.rows.map(\.status) == [413])
            #expect(done.rejectedChunks == 1)
            #expect(done.rejectedReadings == 1)
            #expect(done.counters["forwarded_readings"] == 12, "\(done.text)")
            #expect(done.counters["accepted_readings"] == 13)
            #expect(try await h.waitForCloudCount(12, devices: 4) == 12)
            let expected = h.expectedWindows((0..<13).filter { $0 != 6 }, devices: 4)
            for (device, rows) in try await h.windows(devices: 4, size: "1s") {
                #expect(rows.reduce(0) { $0 + $1.count } == expected[device]?.values.reduce(0) { $0 + $1.count } ?? 0, "\(device)")
            }
        }
    }
}
