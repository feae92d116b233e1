import Foundation
import GRDB
import Testing
import WeirCore
import WeirTestSupport
@testable import WeirSim
import WeirSupport

/// The verifier against a real weir-cloud whose data is broken on purpose: it must catch
/// a lost reading, a double count (an extra reading), a changed value and a conflict.
@Suite(.serialized) struct VerifierCloudTests {
    static let gateway = "gw-verify"
    static let token = "verify-token"

    /// A small truth (no broker needed) and a cloud that holds exactly it.
    static func withTruthfulCloud(_ body: (_ dir: TemporaryDirectory, _ cloud: CloudProcess, _ truth: [Reading]) async throws -> Void) async throws {
        let dir = try TemporaryDirectory(prefix: "sim-verify")
        defer { dir.remove() }
        var options = SimulationOptions(devices: 4, rate: 1, duration: .seconds(150), metrics: ["temp", "energy"], seed: 21,
                                        start: WallClock.nowMs() - 600_000)
        options.duplicates = 0.1
        options.reorder = 0.1
        _ = try TruthStoreTests.writeTruth(options, to: "\(dir.path)/truth.db")
        let truth = try TruthStore.open(path: "\(dir.path)/truth.db").readings()
        let cloud = try await CloudProcess.start(in: dir.path, tokens: [gateway: token], windows: ["10s", "60s"])
        do {
            for (n, start) in stride(from: 0, to: truth.count, by: 400).enumerated() {
                let readings = Array(truth[start..<min(start + 400, truth.count)])
                try await CloudAPI.postAccepted(Batch(gateway: gateway, id: "\(gateway):\(n)", readings: readings), to: cloud.url, token: token)
            }
            try await body(dir, cloud, truth)
            await cloud.stop()
        } catch {
            await cloud.stop()
            throw error
        }
    }

    static func verify(truth path: String, cloud: CloudProcess, allowLoss: Int = 0) async throws -> VerificationReport {
        let verifier = Verifier(truth: try TruthStore.open(path: path), cloud: try CloudClient(baseURL: cloud.url, token: CloudProcess.readerToken),
                                options: .init(sizes: [10_000, 60_000], allowLoss: allowLoss))
        return try await verifier.verify()
    }

    @Test func catchesLossDoubleCountingAChangedValueAndAConflict() async throws {
        try await Self.withTruthfulCloud { dir, cloud, truth in
            // 1. As posted: everything matches.
            let clean = try await Self.verify(truth: "\(dir.path)/truth.db", cloud: cloud)
            #expect(clean.verified, "\(clean.textLines(sizes: [10_000, 60_000]))")
            #expect(clean.readingsChecked == 4 * 150 * 2)
            #expect(clean.lost == 0 && clean.doubleCounted == 0 && clean.mismatchedWindows == 0)
            #expect(clean.windowsChecked[60_000] ?? 0 >= 4 * 2 * 3)

            // 2. A reading the truth has and the cloud never got: lost.
            let lostTruth = "\(dir.path)/truth-lost.db"
            try FileManager.default.copyItem(atPath: "\(dir.path)/truth.db", toPath: lostTruth)
            let missing = Reading(device: truth[0].device, metric: truth[0].metric, ts: truth[0].ts + 1, value: 12.5)
            let writable = try DatabaseQueue(path: lostTruth)
            try await writable.write { db in
                try db.execute(sql: "INSERT INTO readings (device, metric, ts, value) VALUES (?, ?, ?, ?)",
                               arguments: [missing.device, missing.metric, missing.ts, missing.value])
            }
            try await writable.close()
            let lost = try await Self.verify(truth: lostTruth, cloud: cloud)
            #expect(!lost.verified)
            #expect(lost.lost == 1)
            #expect(lost.doubleCounted == 0)
            // ... which --allow-loss 1 accepts.
            #expect(try await Self.verify(truth: lostTruth, cloud: cloud, allowLoss: 1).verified)

            // 3. An extra reading in the cloud: double counted.
            let extra = Reading(device: truth[5].device, metric: truth[5].metric, ts: truth[5].ts + 3, value: 1)
            try await CloudAPI.postAccepted(Batch(gateway: Self.gateway, id: "\(Self.gateway):extra", readings: [extra]), to: cloud.url, token: Self.token)
            let doubled = try await Self.verify(truth: "\(dir.path)/truth.db", cloud: cloud, allowLoss: 100)
            #expect(!doubled.verified)
            #expect(doubled.doubleCounted == 1)
            #expect(doubled.lost == 0)

            // 4. A conflicting repeat (same identity, another value): the cloud keeps the first
            //    value but counts the conflict, and the verifier refuses it.
            var conflicting = truth[9]
            conflicting.value += 1
            try await CloudAPI.postAccepted(Batch(gateway: Self.gateway, id: "\(Self.gateway):conflict", readings: [conflicting]), to: cloud.url, token: Self.token)
            let conflicted = try await Self.verify(truth: "\(dir.path)/truth.db", cloud: cloud, allowLoss: 100)
            #expect(conflicted.cloudConflicts == 1)
            #expect(!conflicted.verified)
        }
    }

    @Test func catchesAValueChangedInTheCloudsDatabase() async throws {
        try await Self.withTruthfulCloud { dir, cloud, truth in
            #expect(try await Self.verify(truth: "\(dir.path)/truth.db", cloud: cloud).verified)
            // Stop the cloud, change one 60 s window's maximum in its SQLite file, start it again.
            await cloud.stop()
            let store = try DatabaseQueue(path: cloud.storePath)
            let changed = try await store.write { db -> Int in
                try db.execute(sql: """
                    UPDATE windows SET max = max + 0.5
                    WHERE (series_id, size_ms, start) IN (SELECT series_id, size_ms, start FROM windows WHERE size_ms = 60000 LIMIT 1)
                    """)
                return db.changesCount
            }
            try await store.close()
            #expect(changed == 1)
            let restarted = try await CloudProcess.start(in: dir.path, port: cloud.port, tokens: [Self.gateway: Self.token], windows: ["10s", "60s"])
            let report: VerificationReport
            do {
                report = try await Self.verify(truth: "\(dir.path)/truth.db", cloud: restarted)
            } catch {
                await restarted.stop()
                throw error
            }
            #expect(!report.verified)
            #expect(report.mismatchedWindows == 1)
            #expect(report.lost == 0 && report.doubleCounted == 0)
            #expect(report.differences.contains { $0.contains("max") }, "\(report.differences)")
            await restarted.stop()
            _ = truth
        }
    }
}
