import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore
import WeirWire

/// `max_pending_batches`: past it a batch is refused with `503` + `Retry-After` before any
/// of it is applied, so the gateway can resend it whole and nothing is lost or doubled.
@Suite struct OverloadTests {
    @Test func aBatchOverThePendingLimitIsRefusedWhole() async throws {
        let harness = try CloudHarness { $0.maxPendingBatches = 1 }
        defer { harness.removeFiles() }
        // Open the store, then hold the database's write lock from another connection, as a
        // slow disk would: the first batch waits for the store (within its 10 s busy
        // timeout), the second finds the limit reached.
        let store = try harness.openStore()
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true // the transaction spans two calls
        let locked = LockHolder(try DatabaseQueue(path: harness.databasePath, configuration: configuration))
        try locked.begin()
        var logger = Logger(label: "weir.cloud.test")
        logger.logLevel = .critical
        let app = try CloudApplication.makeApplication(config: harness.config, store: store, logger: logger)
        defer { try? locked.commit() }

        let first = Batch(gateway: "gw-1", id: "first", readings: readings("d1", (0..<500).map { (t0 + Int64($0) * 1_000, Double($0)) }))
        let second = Batch(gateway: "gw-1", id: "second", readings: readings("d2", (0..<300).map { (t0 + Int64($0) * 1_000, 2 * Double($0)) }))
        try await app.test(.router) { client in
            let answers = try await withThrowingTaskGroup(of: (String, HTTPResponse.Status, String?, Int).self) { group in
                for batch in [first, second] {
                    group.addTask {
                        try await client.execute(uri: "/v1/batches", method: .post,
                                                 headers: [.contentType: "application/json", .authorization: "Bearer \(CloudHarness.token)"],
                                                 body: ByteBuffer(bytes: batch.jsonBytes())) { response in
                            let accepted = response.status == .ok
                                ? (try JSONDecoder().decode(BatchAnswer.self, from: Data(response.body.readableBytesView))).accepted : -1
                            return (batch.id, response.status, response.headers[.retryAfter], accepted)
                        }
                    }
                }
                // Whichever batch came second is answered at once, while the other waits
                // for the lock; release the lock only then.
                var answers: [(String, HTTPResponse.Status, String?, Int)] = []
                if let refused = try await group.next() { answers.append(refused) }
                try locked.commit()
                if let applied = try await group.next() { answers.append(applied) }
                return answers
            }
            #expect(answers.count == 2)
            guard answers.count == 2 else { return }
            let (refusedID, refusedStatus, retryAfter, _) = answers[0]
            let (appliedID, appliedStatus, _, appliedCount) = answers[1]
            #expect(refusedStatus == .serviceUnavailable)
            #expect(retryAfter == "1")
            #expect(appliedStatus == .ok)
            let refused = refusedID == "first" ? first : second
            let applied = appliedID == "first" ? first : second
            #expect(appliedCount == applied.readings.count)

            // Nothing of the refused batch was applied; the applied one is whole.
            try await client.execute(uri: "/v1/devices/\(refused.readings[0].device)/windows?metric=temp", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .notFound)
            }
            let appliedWindows = try await client.windows(applied.readings[0].device)
            #expect(appliedWindows.reduce(0) { $0 + $1.count } == applied.readings.count)

            // Resent, it is applied whole and the first one is not counted twice.
            let (status, answer) = try await client.post(refused)
            #expect(status == .ok)
            #expect(answer?.accepted == refused.readings.count)
            #expect(try await client.post(applied).1?.duplicates == applied.readings.count)
            let windows = try await client.windows(refused.readings[0].device)
            #expect(windows.reduce(0) { $0 + $1.count } == refused.readings.count)
            #expect(windows.reduce(0) { $0 + $1.sum } == refused.readings.reduce(0) { $0 + $1.value })
            try await client.execute(uri: "/metrics", method: .get) { response in
                let line = String(buffer: response.body).split(separator: "\n").first { $0.hasPrefix("weir_cloud_overloaded_total ") }
                #expect((line?.split(separator: " ").last).flatMap { Double($0) } ?? 0 >= 1, "\(line ?? "no weir_cloud_overloaded_total")")
            }
        }
        try await store.close()
    }
}

/// Holds SQLite's write lock from a second connection between `begin()` and `commit()`.
final class LockHolder: @unchecked Sendable {
    private let queue: DatabaseQueue

    init(_ queue: DatabaseQueue) { self.queue = queue }

    func begin() throws { try queue.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") } }
    func commit() throws { try queue.writeWithoutTransaction { db in if db.isInsideTransaction { try db.execute(sql: "COMMIT") } } }
}
