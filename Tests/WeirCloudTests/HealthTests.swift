import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore
import WeirSupport
import WeirWire

/// `GET /healthz` reports the store: real commit and fold failures on a store whose file
/// may not grow (SQLite's `max_page_count`, which holds for root too, unlike chmod).
@Suite struct HealthTests {
    struct Answer: Decodable {
        var status: String
        var since: Int64?
        var reason: String?
        var unfolded_batches: Int
    }

    static func health(_ client: some TestClientProtocol) async throws -> (HTTPResponse.Status, Answer) {
        try await client.execute(uri: "/healthz", method: .get) { response in
            (response.status, try JSONDecoder().decode(Answer.self, from: Data(response.body.readableBytesView)))
        }
    }

    /// Runs `body` against the application over `store` (which the test controls).
    static func withApp(_ harness: CloudHarness, _ store: SQLiteReadingStore,
                        _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var logger = Logger(label: "weir.cloud.test")
        logger.logLevel = .critical
        let app = try CloudApplication.makeApplication(config: harness.config, store: store, logger: logger)
        try await app.test(.router, body)
    }

    /// `count` readings of `devices` devices, each in its own 60 s window from minute `minute` on.
    static func spread(_ id: String, devices: Int, perDevice: Int, minute: Int) -> Batch {
        var rs: [Reading] = []
        for d in 0..<devices {
            for k in 0..<perDevice {
                rs.append(Reading(device: "d\(d)", metric: "v", ts: t0 + Int64(minute + k) * 60_000 + Int64(d), value: Double(k)))
            }
        }
        return Batch(gateway: "gw-1", id: id, readings: rs)
    }

    @Test func aFailingCommitAnswers503UntilACommitSucceeds() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        let store = try harness.openStore()
        try await Self.withApp(harness, store) { client in
            let (okStatus, ok) = try await Self.health(client)
            #expect(okStatus == .ok)
            #expect(ok.status == "ok")
            #expect(try await client.post(Self.spread("b1", devices: 20, perDevice: 10, minute: 0)).0 == .ok)
            #expect(try await Self.health(client).1.unfolded_batches == 1)

            // The file may not grow any more: a batch with new windows cannot commit.
            try store.limitPages(to: try store.limitPages(to: nil))
            let startedAt = WallClock.nowMs()
            let big = Self.spread("b2", devices: 40, perDevice: 100, minute: 10)
            #expect(try await client.post(big).0 == .serviceUnavailable)
            let (failing, answer) = try await Self.health(client)
            #expect(failing == .serviceUnavailable)
            #expect(answer.status == "failing")
            #expect(answer.reason?.contains("full") == true, "\(answer.reason ?? "")")
            #expect((answer.since ?? 0) >= startedAt)
            // Queries answer exactly what was committed: b1, nothing of b2.
            let d0 = try await client.windows("d0", "v")
            #expect(d0.count == 10)
            #expect(d0.reduce(0) { $0 + $1.count } == 10)
            #expect(try await client.devices().map(\.readings).reduce(0, +) == 200)

            // Room again: the resent batch commits and the store is healthy.
            try store.limitPages(to: nil)
            let (status, applied) = try await client.post(big)
            #expect(status == .ok)
            #expect(applied?.accepted == 4_000)
            let (healthy, after) = try await Self.health(client)
            #expect(healthy == .ok)
            #expect(after.status == "ok")
            #expect(try await client.windows("d0", "v").reduce(0) { $0 + $1.count } == 110)
        }
        try await store.close()
    }

    @Test func aFoldThatCannotBeWrittenIsReportedWhileBatchesGoOn() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        let store = try SQLiteReadingStore(path: harness.databasePath, settings: ReconcileSettings(harness.config), foldEvery: 8)
        try await Self.withApp(harness, store) { client in
            // 7 batches of 500 new windows each wait in the log.
            for b in 0..<7 {
                #expect(try await client.post(Self.spread("b\(b)", devices: 50, perDevice: 10, minute: b * 10)).0 == .ok)
            }
            // Room for a few small batches, not for folding 3,500 windows into the tables.
            try store.limitPages(to: try store.limitPages(to: nil) + 24)
            let startedAt = WallClock.nowMs()
            for b in 7..<10 {
                let small = Batch(gateway: "gw-1", id: "s\(b)", readings: [Reading(device: "d0", metric: "v", ts: t0 + Int64(b) * 1_000, value: 1)])
                #expect(try await client.post(small).0 == .ok, "batch \(b) must commit although its fold cannot")
            }
            let (behind, answer) = try await Self.health(client)
            #expect(behind == .serviceUnavailable)
            #expect(answer.status == "fold_behind")
            #expect(answer.reason?.contains("full") == true, "\(answer.reason ?? "")")
            #expect((answer.since ?? 0) >= startedAt)
            #expect(answer.unfolded_batches == 10)
            // Every committed batch is answered, from the log.
            #expect(try await client.windows("d0", "v").reduce(0) { $0 + $1.count } == 73)
            #expect(try await client.devices().map(\.readings).reduce(0, +) == 3_503)

            // Room again: the next batch folds everything.
            try store.limitPages(to: nil)
            #expect(try await client.post(Batch(gateway: "gw-1", id: "s10", readings: [Reading(device: "d1", metric: "v", ts: t0 + 5, value: 1)])).0 == .ok)
            let (healthy, after) = try await Self.health(client)
            #expect(healthy == .ok)
            #expect(after.status == "ok")
            #expect(after.unfolded_batches == 0)
            #expect(try await client.windows("d0", "v").reduce(0) { $0 + $1.count } == 73)
            #expect(try await client.windows("d1", "v").reduce(0) { $0 + $1.count } == 71)
        }
        try await store.close()
        // And the folded file answers the same after a restart.
        let reopened = try harness.openStore()
        #expect(try await reopened.devices().map(\.readings).reduce(0, +) == 3_504)
        try await reopened.close()
    }
}
