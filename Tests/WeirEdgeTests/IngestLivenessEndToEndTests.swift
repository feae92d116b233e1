import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport
import WeirSupport

/// A stall is seen, reported and healed: a real weir-edge whose buffer disk fills up
/// stops taking messages; `/healthz`, `/metrics`, `status`, its log and systemd's
/// watchdog all say so, and when the disk has room again everything lands exactly once.
@Suite("weir-edge ingest liveness", .serialized)
struct IngestLivenessEndToEndTests {
    @Test("a full buffer disk stalls ingest: /healthz 503, metrics, status, one log line, no watchdog; room again: it heals and loses nothing",
          .enabled(if: SmallFilesystem.available, "mounting a small tmpfs needs root (CI runs as root)"))
    func fullDiskStallIsReportedAndHeals() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            let fs = try await SmallFilesystem(at: h.dir.file("fs"), sizeKiB: 16 * 1024)
            do {
                try await stallAndHeal(h, fs)
                await h.edge?.kill()
                await fs.unmount()
            } catch {
                await h.edge?.kill()
                await fs.unmount()
                throw error
            }
        }
    }

    func stallAndHeal(_ h: EdgeHarness, _ fs: SmallFilesystem) async throws {
        let notify = try NotifySocket(in: h.dir.path)
        let metricsPort = try FreePort.allocate()
        let env = [
            "WEIR_EDGE_BUFFER_PATH": "\(fs.path)/edge.db",
            "WEIR_EDGE_BUFFER_CHUNK_MAX_READINGS": "20",
            "WEIR_EDGE_MQTT_INBOUND_CAPACITY": "16",
            "WEIR_EDGE_LIVENESS_STALL_AFTER": "2s",
            "WEIR_EDGE_METRICS_LISTEN": "127.0.0.1:\(metricsPort)",
            "NOTIFY_SOCKET": notify.path,
            "WATCHDOG_USEC": "2000000",
        ]
        try await h.startEdge(environment: env)
        let healthURL = "http://127.0.0.1:\(metricsPort)/healthz"
        let healthy = try await health(healthURL)
        #expect(healthy.status == 200 && healthy.body.status == .ok, "\(healthy)")
        #expect(healthy.body.subscribed)

        // systemd hears READY=1 once subscribed, then WATCHDOG=1 about every second.
        try await Task.sleep(for: .milliseconds(2500))
        let before = notify.receive()
        #expect(before.contains { $0.contains("READY=1") }, "\(before)")
        #expect(before.filter { $0 == "WATCHDOG=1" }.count >= 2, "\(before)")

        // The disk fills; the next seals fail, the consumer retries and takes nothing more.
        let taken = fs.fill()
        #expect(taken > 0)
        let pub = try await h.publisher()
        let n = 2_000
        try await h.publish(0..<n, devices: 4, with: pub)

        let stalled = try await waitForHealth(healthURL, timeout: .seconds(30)) { $0.status == 503 }
        #expect(stalled.status == 503, "\(stalled)\n\(h.logs())")
        #expect(stalled.body.status == .stalled)
        let since = try #require(stalled.body.since)
        #expect(abs(since - WallClock.nowMs()) < 60_000, "since is a recent epoch ms")
        #expect(stalled.body.reason?.contains("inbound queue") == true || stalled.body.reason?.contains("consumer") == true,
                "\(stalled.body.reason ?? "no reason")")

        let (code, page) = try await HTTPGet.fetch("http://127.0.0.1:\(metricsPort)/metrics")
        let metrics = String(decoding: page, as: UTF8.self)
        #expect(code == 200)
        #expect(prometheusValue(metrics, "weir_edge_ingest_stalled") == 1)
        #expect((prometheusValue(metrics, "weir_edge_ingest_last_progress_seconds") ?? 0) >= 2)

        let shown = try await EdgeProcess.runCommand(["status", "--config", h.configPath], in: h.dir.path, environment: env)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(shown.stdout.contains("ingest:               stalled since"), "\(shown.stdout)")

        // A stalled edge stops petting the watchdog (systemd would restart it).
        _ = notify.receive()
        try await Task.sleep(for: .milliseconds(2500))
        let during = notify.receive()
        #expect(!during.contains("WATCHDOG=1"), "\(during)")
        #expect(try await health(healthURL).status == 503, "still stalled while the disk is full")

        // Room again: sealing succeeds, the queue moves, the stall clears.
        fs.free()
        let healed = try await waitForHealth(healthURL, timeout: .seconds(30)) { $0.status == 200 }
        #expect(healed.body.status == .ok, "\(healed)\n\(h.logs())")
        let seen = try await h.waitForCloudCount(Int64(n), devices: 4, timeout: .seconds(60))
        #expect(seen == Int64(n), "cloud holds \(seen) of \(n)\n\(h.logs())")
        let problems = try await h.windowMismatches(0..<n, devices: 4)
        #expect(problems.isEmpty, "\(problems.prefix(10))")
        try await Task.sleep(for: .milliseconds(1500))
        #expect(notify.receive().contains("WATCHDOG=1"), "petting again")

        let log = h.edge?.process.standardError ?? ""
        let stallLines = log.split(separator: "\n").filter { $0.contains("ingest stalled") }
        #expect(stallLines.count == 1, "logged once when it starts: \(stallLines)")
        #expect(stallLines.first?.contains("error") == true)
        #expect(log.split(separator: "\n").filter { $0.contains("ingest resumed") }.count == 1)
        let after = try await EdgeProcess.runCommand(["status", "--config", h.configPath], in: h.dir.path, environment: env)
        #expect(after.stdout.contains("ingest:               ok"), "\(after.stdout)")

        await h.edge?.stop()
        #expect(notify.receive().contains { $0.contains("STOPPING=1") })
        await pub.disconnect()
    }

    struct Health: Sendable, CustomStringConvertible {
        var status: Int
        var body: EdgeHealth.Snapshot
        var description: String { "\(status) \(body)" }
    }

    func health(_ url: String) async throws -> Health {
        let (status, body) = try await HTTPGet.fetch(url)
        return Health(status: status, body: try JSONDecoder().decode(EdgeHealth.Snapshot.self, from: body))
    }

    func waitForHealth(_ url: String, timeout: Duration, _ condition: (Health) -> Bool) async throws -> Health {
        let deadline = ContinuousClock.now + timeout
        var last = try await health(url)
        while !condition(last) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            last = try await health(url)
        }
        return last
    }
}
