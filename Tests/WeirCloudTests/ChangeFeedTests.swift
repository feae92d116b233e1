import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore

/// The changefeed: a consumer that applies every change as an upsert ends with exactly the
/// windows the query API answers (stream–table duality), through late data, duplicates,
/// folds and restarts; cursors survive restarts; the HTTP answers (JSON, long poll, SSE, 410).
@Suite struct ChangeFeedTests {
    struct WindowID: Hashable { var device: String; var metric: String; var size: Int64; var start: Int64 }
    struct Seen: Equatable { var record: WindowRecord; var closed: Bool }

    /// Reads every change after `cursor` and applies it to `table`; returns the new cursor.
    static func consume(_ store: SQLiteReadingStore, after cursor: Int64, into table: inout [WindowID: Seen]) async throws -> Int64 {
        var cursor = cursor
        while true {
            guard case .changes(let changes, let next) = try await store.changes(after: cursor, limit: 97) else {
                Issue.record("cursor \(cursor) is gone")
                return cursor
            }
            if changes.isEmpty { return cursor }
            for (i, change) in changes.enumerated() {
                #expect(change.cursor == cursor + 1 + Int64(i), "cursors are consecutive")
                table[WindowID(device: change.device, metric: change.metric, size: change.record.sizeMs, start: change.record.start)] =
                    Seen(record: change.record, closed: change.closed)
            }
            cursor = next
        }
    }

    /// Every window the store answers, with its state as the query API computes it.
    static func windowsTable(_ store: SQLiteReadingStore, _ generator: StorePropertyTests.Generator) async throws -> [WindowID: Seen] {
        var table: [WindowID: Seen] = [:]
        for device in generator.devices {
            guard let summary = try await store.device(named: device) else { continue }
            for metric in generator.metrics {
                for size in StorePropertyTests.sizes {
                    for record in try await store.windows(device: device, metric: metric, sizeMs: size, from: .min, to: .max) ?? [] {
                        table[WindowID(device: device, metric: metric, size: size, start: record.start)] =
                            Seen(record: record, closed: WindowState(end: record.end, watermark: summary.watermark) == .closed)
                    }
                }
            }
        }
        return table
    }

    @Test(arguments: [(UInt64(11), 3), (UInt64(12), 64)])
    func aConsumerFromCursorZeroEndsWithTheWindowsTable(seed: UInt64, foldEvery: Int) async throws {
        let harness = try CloudHarness { $0.windowSizes = StorePropertyTests.sizes.map { .milliseconds($0) } }
        defer { harness.removeFiles() }
        func open() throws -> SQLiteReadingStore {
            try SQLiteReadingStore(path: harness.databasePath, settings: ReconcileSettings(harness.config), foldEvery: foldEvery)
        }
        var store = try open()
        var generator = StorePropertyTests.Generator(seed: seed)
        var table: [WindowID: Seen] = [:]
        var cursor: Int64 = 0
        var closes = 0
        for b in 0..<60 {
            let readings = generator.batch()
            _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b\(b)", readings: readings)), receivedAt: Int64(b))
            // The consumer lags behind now and then, and reads in pages of 97.
            if b % 4 == 3 {
                let before = table
                cursor = try await Self.consume(store, after: cursor, into: &table)
                closes += table.count { id, seen in seen.closed && before[id].map { !$0.closed && $0.record == seen.record } ?? false }
                #expect(table == (try await Self.windowsTable(store, generator)), "seed \(seed) batch \(b): the consumer's table differs")
            }
            switch b % 13 {
            case 11:
                try await store.close()
                store = try open()
            case 12:
                try store.closeWithoutCheckpoint()
                store = try open()
            default: break
            }
        }
        cursor = try await Self.consume(store, after: cursor, into: &table)
        #expect(table == (try await Self.windowsTable(store, generator)))
        #expect(store.latestCursor == cursor, "the newest cursor after restarts is the consumer's")
        #expect(closes > 0, "some windows closed without a new reading (a change of state alone)")
        try await store.close()
    }

    @Test func httpAnswersJSONLongPollsAndStreams() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient(.live) { client in
            // Nothing yet: an empty page at once, and a long poll that ends with the timeout.
            try await client.execute(uri: "/v1/changes?after=0", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"changes":[],"next":0}"#)
            }
            let started = ContinuousClock.now
            try await client.execute(uri: "/v1/changes?after=0&wait=300ms", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok)
            }
            #expect(ContinuousClock.now - started >= .milliseconds(250))

            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0 + 1_000, 1), (t0 + 2_000, 2)])))
            let answer = try await client.execute(uri: "/v1/changes?after=0&wait=20s", method: .get, headers: CloudHarness.readerHeaders) { response in
                String(buffer: response.body)
            }
            let object = try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any]
            let changes = object?["changes"] as? [[String: Any]] ?? []
            #expect(changes.count == 1)
            #expect(changes.first?["device"] as? String == "d1" && changes.first?["count"] as? Int == 2)
            #expect(changes.first?["state"] as? String == "open" && changes.first?["cursor"] as? Int == 1)
            #expect(object?["next"] as? Int == 1)

            // The watermark passes the window's end: it closes without a reading of its own.
            try await client.post(Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0 + 70_000, 3)])))
            try await client.execute(uri: "/v1/changes?after=1", method: .get, headers: CloudHarness.readerHeaders) { response in
                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                let changes = object?["changes"] as? [[String: Any]] ?? []
                #expect(changes.map { $0["start"] as? Int64 } == [t0 + 60_000, t0])
                #expect(changes.map { $0["state"] as? String } == ["open", "closed"])
            }

            // Server-Sent Events with a limit end after that many events.
            try await client.execute(uri: "/v1/changes?after=0&limit=3", method: .get, headers: CloudHarness.readerHeaders.merging([.accept: "text/event-stream"])) { response in
                #expect(response.headers[.contentType] == "text/event-stream")
                let text = String(buffer: response.body)
                #expect(text.components(separatedBy: "event: change\n").count - 1 == 3)
                #expect(text.hasPrefix("id: 1\nevent: change\ndata: {"))
            }
            try await client.execute(uri: "/v1/changes?after=x", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .badRequest)
            }
        }
    }

    /// A long poll returns as soon as a batch commits, not at its timeout.
    @Test func aWaitingReaderWakesAtTheCommit() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        let store = try harness.openStore()
        // The timeout is far from the wake-up, so a loaded machine cannot blur the two.
        async let woke: Void = store.waitForChanges(after: 0, timeout: .seconds(120))
        try await Task.sleep(for: .milliseconds(200))
        _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0, 1)]))), receivedAt: 0)
        let committed = ContinuousClock.now
        await woke
        #expect(ContinuousClock.now - committed < .seconds(30), "woken by the commit, not by the timeout")
        // Cancelled waiters return too.
        let waiter = Task { await store.waitForChanges(after: 5, timeout: .seconds(30)) }
        waiter.cancel()
        await waiter.value
        try await store.close()
    }

    @Test func aCursorOlderThanWhatIsKeptIsGone() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        // Retention 1 ms: every change but the newest row goes at the next prune.
        let store = try SQLiteReadingStore(path: harness.databasePath, settings: ReconcileSettings(harness.config),
                                           changesRetention: .milliseconds(1))
        for b in 0..<3 {
            _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b\(b)",
                readings: readings("d\(b)", [(t0, 1)]))), receivedAt: 0)
        }
        try await Task.sleep(for: .milliseconds(5))
        _ = try await store.pruneRaw()
        guard case .gone(let oldest) = try await store.changes(after: 0, limit: 10) else {
            Issue.record("cursor 0 should be gone")
            return
        }
        #expect(oldest == 3)
        guard case .changes(let changes, let next) = try await store.changes(after: 2, limit: 10) else {
            Issue.record("cursor 2 is kept")
            return
        }
        #expect(changes.map(\.device) == ["d2"] && next == 3)
        try await store.close()
        // The next cursor survives a restart with only the newest row kept.
        let reopened = try SQLiteReadingStore(path: harness.databasePath, settings: ReconcileSettings(harness.config))
        _ = try await reopened.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b9", readings: readings("d9", [(t0, 1)]))), receivedAt: 0)
        #expect(reopened.latestCursor == 4)
        try await reopened.close()
    }
}
