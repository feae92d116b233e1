import Foundation
import GRDB
import Testing
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport
import WeirWire

/// weir-edge as a user runs it: a real mosquitto, real weir-edge and weir-cloud
/// processes, real SQLite files. Serialized: the timing bounds (SIGKILL loss) need the
/// machine's attention.
@Suite("weir-edge end to end", .serialized)
struct EdgeEndToEndTests {
    @Test("a metrics.listen address already in use stops the edge with an error that names it")
    func metricsListenInUseIsNamed() async throws {
        try await withEdgeHarness { h in
            let taken = h.broker.port  // the broker listens there
            // The edge may say "running" before its metrics server binds; either way it stops and says why.
            var said: String
            do {
                try await h.startEdge(environment: ["WEIR_EDGE_METRICS_LISTEN": "127.0.0.1:\(taken)"])
                said = try await h.edge?.process.waitForOutput(containing: "metrics.listen", timeout: .seconds(10)) ?? ""
            } catch {
                said = "\(error)"
            }
            #expect(said.contains("cannot serve metrics.listen 127.0.0.1:\(taken)"), "\(said)")
        }
    }

    @Test("every reading published reaches the cloud's windows exactly once; malformed payloads become dead letters without stalling the reader")
    func exactlyOnceWithDeadLetters() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            let metricsPort = try FreePort.allocate()
            try await h.startEdge(environment: ["WEIR_EDGE_METRICS_LISTEN": "127.0.0.1:\(metricsPort)"])
            // The C client publishes device d0's readings; garbage in between.
            let n = 600
            var lines: [String] = []
            for i in 0..<n {
                lines.append("{\"ts\": \(h.baseTs + Int64(i)), \"temp\": \(i)}")
                if i % 100 == 0 { lines.append("{\"ts\": \"yesterday\", \"temp\": oops") }
            }
            try await h.broker.publishWithMosquittoPub(topic: "devices/d0/telemetry", lines: lines)
            let seen = try await h.waitForCloudCount(Int64(n), devices: 1)
            #expect(seen == Int64(n), "cloud holds \(seen) of \(n)\n\(h.logs())")
            let windows = try await h.windows(devices: 1, size: "1s")
            let expected = h.expectedWindows(0..<n, devices: 1)
            for (device, rows) in windows {
                for w in rows {
                    #expect(w.count == expected[device]?[w.start]?.count, "window \(w.start) of \(device)")
                    #expect(w.sum == expected[device]?[w.start]?.sum, "window \(w.start) of \(device)")
                }
                #expect(rows.count == expected[device]?.count)
            }
            let status = try await h.waitForStatus { $0.chunks == 0 }
            #expect(status.counters["dead_letters"] == 6)
            #expect(status.counters["accepted_readings"] == Int64(n))
            #expect(status.deadLetterRows == 6)
            // The CLI shows them.
            let listed = try await EdgeProcess.runCommand(["dead-letters", "--config", h.configPath, "--limit", "3"], in: h.dir.path)
            #expect(listed.status == 0)
            #expect(listed.stdout.contains("6 dead letters in total"))
            #expect(listed.stdout.contains("devices/d0/telemetry"))
            // Prometheus metrics on metrics.listen.
            let (code, body) = try await HTTPGet.fetch("http://127.0.0.1:\(metricsPort)/metrics")
            let metrics = String(decoding: body, as: UTF8.self)
            #expect(code == 200)
            #expect(metrics.contains("weir_edge_readings_accepted_total \(n)"), "\(metrics.prefix(2000))")
            #expect(metrics.contains("weir_edge_dead_letters_total 6"))
            #expect(metrics.contains("weir_edge_forwarded_readings_total \(n)"))
            let shown = try await EdgeProcess.runCommand(["status", "--config", h.configPath], in: h.dir.path)
            #expect(shown.status == 0)
            #expect(shown.stdout.contains("0 chunks"))
        }
    }

    @Test("cloud down: the buffer grows while publishing continues; cloud back: it drains and the windows are exact")
    func cloudOutageDrains() async throws {
        try await withEdgeHarness { h in
            try await h.startEdge()
            let pub = try await h.publisher()
            let n = 3000
            try await h.publish(0..<(n / 2), with: pub)
            let grown = try await h.waitForStatus { $0.readings >= Int64(n / 2) && $0.uplinkState == "retrying" }
            #expect(grown.readings == Int64(n / 2), "buffer holds \(grown.readings)")
            #expect(grown.chunks >= 1)
            #expect(grown.uplinkState == "retrying")
            #expect(grown.lastUplinkError != nil)

            try await h.startCloud()
            try await h.publish((n / 2)..<n, with: pub)
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4)
            #expect(seen == Int64(n), "cloud holds \(seen) of \(n)\n\(h.logs())")
            let expected = h.expectedWindows(0..<n, devices: 4)
            for (device, rows) in try await h.windows(devices: 4, size: "1s") {
                #expect(rows.count == expected[device]?.count)
                for w in rows {
                    #expect(w.count == expected[device]?[w.start]?.count)
                    #expect(w.sum == expected[device]?[w.start]?.sum)
                }
            }
            let drained = try await h.waitForStatus { $0.chunks == 0 }
            #expect(drained.chunks == 0)
            #expect(drained.counters["forwarded_readings"] == Int64(n))
            await pub.disconnect()
        }
    }

    @Test("SIGTERM mid-stream, restart: nothing lost, nothing double-counted")
    func sigtermMidStream() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            try await h.startEdge()
            let pub = try await h.publisher()
            let n = 4000
            let publishing = Task { try await h.publish(0..<n, with: pub, concurrency: 4) }
            try await Task.sleep(for: .milliseconds(500))
            let exit = await h.edge?.stop()
            #expect(exit == .exited(0), "weir-edge exit on SIGTERM: \(String(describing: exit))")
            try await Task.sleep(for: .milliseconds(300))
            try await h.startEdge()
            try await publishing.value
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4)
            #expect(seen == Int64(n), "cloud holds \(seen) of \(n)\n\(h.logs())")
            let expected = h.expectedWindows(0..<n, devices: 4)
            for (device, rows) in try await h.windows(devices: 4, size: "1s") {
                for w in rows {
                    #expect(w.count == expected[device]?[w.start]?.count, "double-counted or lost in \(device) \(w.start)")
                    #expect(w.sum == expected[device]?[w.start]?.sum)
                }
            }
            await pub.disconnect()
        }
    }

    @Test("SIGKILL mid-stream, restart: the loss is at most what arrived within one flush interval, nothing double-counted")
    func sigkillMidStream() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            // A small inbound queue: what libmosquitto acknowledged but the pipeline has
            // not taken yet is part of what a crash can lose.
            let inbound = 20
            try await h.startEdge(environment: ["WEIR_EDGE_MQTT_INBOUND_CAPACITY": "\(inbound)"])
            let pub = try await h.publisher()
            // A steady 2000 readings/s (20 every 10 ms), measured at the publisher.
            let n = 6000
            let perTick = 20
            let publishing = Task {
                var i = 0
                let clock = ContinuousClock()
                var next = clock.now
                while i < n {
                    try await h.publish(i..<min(n, i + perTick), with: pub, concurrency: perTick)
                    i += perTick
                    next += .milliseconds(10)
                    try await Task.sleep(until: next, clock: clock)
                }
            }
            try await Task.sleep(for: .milliseconds(1200))
            await h.edge?.kill()
            try await Task.sleep(for: .milliseconds(300))
            try await h.startEdge()
            try await publishing.value
            try await h.waitForDrain()
            let seen = try await h.cloudCount(devices: 4)
            let lost = Int64(n) - seen
            // 2000/s × 100 ms flush interval = 200 readings sit unsealed in memory at most,
            // plus the chunk being committed at that instant (another interval's worth) and
            // the messages in the inbound queue.
            let bound = Int64(2000 * 100 / 1000 * 2 + inbound)
            print("SIGKILL: published \(n), cloud has \(seen), lost \(lost) (bound \(bound))")
            #expect(lost >= 0, "more readings than published: double-counted")
            #expect(lost <= bound, "lost \(lost) readings, more than \(bound)\n\(h.logs())")
            let expected = h.expectedWindows(0..<n, devices: 4)
            for (device, rows) in try await h.windows(devices: 4, size: "1s") {
                for w in rows {
                    let e = expected[device]?[w.start]
                    #expect(w.count <= e?.count ?? 0, "double-counted in \(device) \(w.start)")
                    if w.count == e?.count { #expect(w.sum == e?.sum) }
                }
            }
            await pub.disconnect()
        }
    }

    @Test("cap reached: oldest chunks evicted, forwarded + dropped (ledger) = accepted, and the cloud reports the drops")
    func capEvictsIntoLedger() async throws {
        try await withEdgeHarness { h in
            // Small chunks, a tiny cap, the cloud away: eviction must happen. (Requests of
            // 50 readings also keep the backlog compaction from merging the chunks.)
            try await h.startEdge(environment: ["WEIR_EDGE_BUFFER_MAX_BYTES": "2KiB", "WEIR_EDGE_BUFFER_CHUNK_MAX_READINGS": "50",
                                                "WEIR_EDGE_UPLINK_MAX_REQUEST_READINGS": "50"])
            let pub = try await h.publisher()
            let n = 2000
            try await h.publish(0..<n, with: pub)
            let full = try await h.waitForStatus { ($0.counters["accepted_readings"] ?? 0) >= Int64(n) }
            let evicted = full.counters["evicted_readings"] ?? 0
            #expect(evicted > 0, "nothing evicted: \(full.text)")
            #expect(full.bytes <= 2048 + 1024)
            #expect(full.pendingDropRows > 0)

            try await h.startCloud()
            let drained = try await h.waitForStatus { $0.chunks == 0 && $0.pendingDropRows == 0 }
            #expect(drained.chunks == 0)
            #expect(drained.pendingDropRows == 0)
            let forwarded = try await h.cloudCount(devices: 4)
            let dropped = try await h.cloudDevices().reduce(0) { $0 + $1.dropped_at_edge }
            #expect(forwarded + dropped == Int64(n), "forwarded \(forwarded) + dropped \(dropped) != \(n)\n\(h.logs())")
            #expect(dropped == drained.counters["evicted_readings"])
            #expect(forwarded == drained.counters["forwarded_readings"])
            await pub.disconnect()
        }
    }

    @Test("a corrupted chunk is quarantined and the rest is forwarded")
    func corruptedChunkQuarantined() async throws {
        try await withEdgeHarness { h in
            try await h.startEdge()
            let pub = try await h.publisher()
            // Three bursts, each sealed into its own chunk.
            for burst in 0..<3 {
                try await h.publish((burst * 100)..<((burst + 1) * 100), with: pub)
                _ = try await h.waitForStatus { $0.readings >= Int64((burst + 1) * 100) }
            }
            #expect(await h.edge?.stop() == .exited(0))
            // Damage the middle of one chunk's body.
            let queue = try DatabaseQueue(path: h.bufferPath)
            let damaged: Int64 = try await queue.write { db in
                let rows = try Row.fetchAll(db, sql: "SELECT seq, readings, body FROM chunks ORDER BY seq")
                let victim = rows[rows.count / 2]
                var body = [UInt8](victim["body"] as Data)
                for k in (body.count / 2)..<min(body.count, body.count / 2 + 8) { body[k] ^= 0x5A }
                try db.execute(sql: "UPDATE chunks SET body = ? WHERE seq = ?", arguments: [Data(body), victim["seq"] as Int64])
                return victim["readings"]
            }
            try queue.close()
            try await h.startCloud()
            try await h.startEdge()
            let status = try await h.waitForStatus { $0.chunks == 0 }
            #expect(status.quarantinedChunks == 1)
            #expect(status.counters["quarantined_chunks"] == 1)
            let seen = try await h.waitForCloudCount(300 - damaged, devices: 4)
            #expect(seen == 300 - damaged, "cloud holds \(seen), expected \(300 - damaged)")
            #expect(h.edge?.process.isRunning == true, "the edge must keep running")
            await pub.disconnect()
        }
    }

    @Test("a bad token keeps all data and says 'uplink unauthorized'; the right token drains it")
    func badTokenKeepsData() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud(tokens: ["gw-1": "right-token"])
            try await h.startEdge(environment: ["WEIR_EDGE_UPLINK_TOKEN": "wrong-token"])
            let pub = try await h.publisher()
            let n = 500
            try await h.publish(0..<n, with: pub)
            let stuck = try await h.waitForStatus { $0.readings >= Int64(n) && $0.uplinkState == "uplink unauthorized" }
            #expect(stuck.readings == Int64(n))
            #expect(stuck.uplinkState == "uplink unauthorized")
            #expect(stuck.lastUplinkError?.contains("unauthorized") == true)
            try await Task.sleep(for: .seconds(1))
            #expect(try h.status().readings == Int64(n), "a bad token must not destroy data")
            #expect(try await h.cloudCount(devices: 4) == 0)

            #expect(await h.edge?.stop() == .exited(0))
            try await h.startEdge(environment: ["WEIR_EDGE_UPLINK_TOKEN": "right-token"])
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4)
            #expect(seen == Int64(n))
            await pub.disconnect()
        }
    }

    @Test("a wrong uplink.url path (404) keeps all data and says 'uplink endpoint not found'; the right URL drains it")
    func wrongURLKeepsData() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            try await h.startEdge(environment: ["WEIR_EDGE_UPLINK_URL": "http://127.0.0.1:\(h.cloudPort)/api"])
            let pub = try await h.publisher()
            let n = 500
            try await h.publish(0..<n, with: pub)
            let stuck = try await h.waitForStatus { $0.readings >= Int64(n) && $0.uplinkState == "uplink endpoint not found" }
            #expect(stuck.readings == Int64(n))
            #expect(stuck.rejectedChunks == 0, "a 404 says the URL is wrong, not the batch")
            #expect(stuck.lastUplinkError?.contains("404") == true)
            #expect(stuck.lastUplinkError?.contains("uplink.url") == true)
            try await Task.sleep(for: .seconds(1))
            #expect(try h.status().readings == Int64(n), "a wrong URL must not set data aside")
            #expect(try await h.cloudCount(devices: 4) == 0)

            #expect(await h.edge?.stop() == .exited(0))
            try await h.startEdge()
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4)
            #expect(seen == Int64(n))
            #expect(try h.status().rejectedChunks == 0)
            await pub.disconnect()
        }
    }

    @Test("413 from the cloud: the batch is split until it fits, and every reading arrives once")
    func tooLargeSplits() async throws {
        try await withEdgeHarness { h in
            // JSON bodies (about 70 bytes a reading) against a 4 KiB cap: a backlog batch
            // must be split by chunks, then chunks by readings.
            try await h.startEdge(environment: ["WEIR_EDGE_UPLINK_FORMAT": "json"])
            let pub = try await h.publisher()
            let n = 1500
            try await h.publish(0..<n, with: pub)
            _ = try await h.waitForStatus { $0.readings >= Int64(n) }
            try await h.startCloud(extraConfig: "max_body: 4KiB\n")
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4)
            #expect(seen == Int64(n), "cloud holds \(seen) of \(n)\n\(h.logs())")
            let drained = try await h.waitForStatus { $0.chunks == 0 }
            #expect(drained.rejectedChunks == 0)
            #expect(drained.counters["forwarded_readings"] == Int64(n))
            #expect(h.edge?.process.standardError.contains("cloud said 413") == true, "the cap was never hit")
            await pub.disconnect()
        }
    }

    @Test("uplink.bandwidth caps the bytes per second a backlog drains at")
    func bandwidthCap() async throws {
        try await withEdgeHarness { h in
            // Chunks of 50 readings, requests of at most 1 KiB, 512 bytes/s.
            try await h.startEdge(environment: ["WEIR_EDGE_UPLINK_BANDWIDTH": "512", "WEIR_EDGE_UPLINK_MAX_REQUEST_BYTES": "1KiB",
                                                "WEIR_EDGE_BUFFER_CHUNK_MAX_READINGS": "50", "WEIR_EDGE_UPLINK_MAX_REQUEST_READINGS": "50"])
            let pub = try await h.publisher()
            let n = 1000
            try await h.publish(0..<n, with: pub)
            let backlog = try await h.waitForStatus { $0.readings >= Int64(n) }
            try await h.startCloud()
            let start = ContinuousClock.now
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4, timeout: .seconds(60))
            let took = ContinuousClock.now - start
            #expect(seen == Int64(n))
            // The first request goes at once; each later one waits for its predecessor's bytes.
            let floor = Duration.milliseconds((backlog.bytes - 1024) * 1000 / 512 - 500)
            print("bandwidth: \(backlog.bytes) bytes of chunks drained in \(took) at 512 B/s (floor \(floor))")
            #expect(took >= floor, "drained \(backlog.bytes) bytes in \(took) under a 512 B/s cap")
            #expect(took < floor + .seconds(10))
            await pub.disconnect()
        }
    }

    @Test("the broker restarts: status shows it down, the edge reconnects by itself and every reading arrives once")
    func brokerRestart() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            try await h.startEdge()
            var pub = try await h.publisher()
            let n = 2000
            try await h.publish(0..<(n / 2), with: pub)
            let up = try await h.waitForStatus { ($0.counters["accepted_readings"] ?? 0) >= Int64(n / 2) }
            #expect(up.brokerState == "connected")
            await pub.disconnect()
            // While the broker is down, status says so, with libmosquitto's reason.
            await h.broker.stop()
            let down = try await h.waitForStatus(timeout: .seconds(15)) { $0.brokerState == "not connected" }
            #expect(down.brokerState == "not connected")
            #expect(down.lastBrokerError?.isEmpty == false)
            h.broker = try await MosquittoBroker.start(in: h.dir.path, port: h.broker.port)
            let back = try await h.waitForStatus(timeout: .seconds(30)) { $0.brokerState == "connected" }
            #expect(back.brokerState == "connected")
            pub = try await h.publisher()
            try await h.publish((n / 2)..<n, with: pub)
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4, timeout: .seconds(45))
            #expect(seen == Int64(n), "cloud holds \(seen) of \(n)\n\(h.logs())")
            #expect(h.edge?.process.standardError.contains("MQTT reconnected") == true)
            await pub.disconnect()
        }
    }
}
