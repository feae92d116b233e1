import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirTestSupport

/// weir-edge with a list of weir-cloud replicas on one PostgreSQL database: a replica
/// killed with SIGKILL in the middle of the stream costs nothing — the edge moves to the
/// next URL, resends what was not answered, and every reading is counted exactly once.
@Suite(.serialized) struct ReplicaFailoverEndToEndTests {
    @Test func replicaKilledMidStreamLosesNothingAndCountsNothingTwice() async throws {
        try await withEdgeHarness { h in
            let store = try PostgresServer.shared().createDatabase()
            try FileManager.default.createDirectory(atPath: h.dir.file("a"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: h.dir.file("b"), withIntermediateDirectories: true)
            let a = try await CloudProcess.start(in: h.dir.file("a"), windows: ["1s", "60s"], store: store)
            let b = try await CloudProcess.start(in: h.dir.file("b"), windows: ["1s", "60s"], store: store)
            h.cloud = a
            do {
                try h.writeConfig(uplink: "[\(a.url), \(b.url)]")
                try await h.startEdge()
                let total = 8_000
                let publisher = try await h.publisher()
                let publishing = Task { try await h.publish(0..<total, devices: 4, with: publisher, concurrency: 4) }
                // Kill the replica the edge sends to while readings still flow.
                let seenByA = try await h.waitForCloudCount(1_500, devices: 4, timeout: .seconds(60))
                #expect(seenByA >= 1_500, "replica a got \(seenByA) readings before the kill\n\(h.logs())")
                await a.kill()
                h.cloud = b
                try await publishing.value

                let counted = try await h.waitForCloudCount(Int64(total), devices: 4, timeout: .seconds(90))
                try await h.waitForDrain(timeout: .seconds(30))
                #expect(counted == Int64(total), "\(h.logs())")
                let mismatches = try await h.windowMismatches(0..<total, devices: 4)
                #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
                let devices = try await h.cloudDevices()
                #expect(devices.map(\.readings).reduce(0, +) == Int64(total), "0 double-counted, 0 lost")
                let status = try h.status()
                #expect(status.uplinkURL == b.url, "status names the replica in use: \(String(describing: status.uplinkURL))")
                #expect(status.chunks == 0)

                // The killed replica comes back on the same database with the same answer.
                let again = try await CloudProcess.start(in: h.dir.file("a"), port: a.port, windows: ["1s", "60s"], store: store)
                h.cloud = again
                #expect(try await h.windowMismatches(0..<total, devices: 4).isEmpty)
                await again.stop()
                h.cloud = b
            } catch {
                await a.kill()
                await b.kill()
                throw error
            }
        }
    }
}
