import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore
import WeirTestSupport
import WeirSupport
import WeirWire

/// Reconciliation through the HTTP API: each test checks the windows' numbers.
@Suite struct ReconcileTests {
    @Test(arguments: StoreKind.allCases) func duplicatesWithinAndAcrossBatchesAreCountedOnce(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let first = Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0 + 1_000, 1), (t0 + 2_000, 2), (t0 + 1_000, 1)]))
            let (status1, answer1) = try await client.post(first)
            #expect(status1 == .ok)
            #expect(answer1?.accepted == 2)
            #expect(answer1?.duplicates == 1)
            let second = Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0 + 2_000, 2), (t0 + 3_000, 3)]))
            let (_, answer2) = try await client.post(second)
            #expect(answer2?.accepted == 1)
            #expect(answer2?.duplicates == 1)

            let windows = try await client.windows("d1")
            #expect(windows.count == 1)
            #expect(windows.first?.count == 3)
            #expect(windows.first?.sum == 6)
            let device = try await client.devices().first
            #expect(device?.readings == 3)
            #expect(device?.duplicates == 2)
        }
    }

    @Test(arguments: StoreKind.allCases) func resendingABatchGivesIdenticalWindowsAndOnlyDuplicates(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store) { $0.windowSizes = [.seconds(10), .seconds(60)] }
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let batch = Batch(gateway: "gw-1", id: "gw-1:000001",
                              readings: (0..<50).map { Reading(device: "d\($0 % 3)", metric: "temp", ts: t0 + Int64($0) * 1_700, value: Double($0) * 0.5) })
            let (_, first) = try await client.post(batch)
            #expect(first?.accepted == 50)
            let before10 = try await client.windows("d1", size: "10s").map(\.numbers)
            let before60 = try await client.windows("d1", size: "60s").map(\.numbers)

            let (status, again) = try await client.post(batch)
            #expect(status == .ok)
            #expect(again?.accepted == 0)
            #expect(again?.duplicates == 50)
            #expect(again?.conflicts == 0)
            #expect(try await client.windows("d1", size: "10s").map(\.numbers) == before10)
            #expect(try await client.windows("d1", size: "60s").map(\.numbers) == before60)
        }
    }

    @Test(arguments: StoreKind.allCases) func outOfOrderReadingsInsideAWindowAggregateCorrectly(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            // Within max_out_of_order (5 s): not late.
            let batch = Batch(gateway: "gw-1", id: "b1",
                              readings: readings("d1", [(t0 + 10_000, 5), (t0 + 7_000, 9), (t0 + 12_000, 1), (t0 + 8_000, 3)]))
            let (_, answer) = try await client.post(batch)
            #expect(answer?.accepted == 4)
            #expect(answer?.late == 0)
            let w = try #require(try await client.windows("d1").first)
            #expect(w.start == t0)
            #expect(w.end == t0 + 60_000)
            #expect(w.count == 4)
            #expect(w.sum == 18)
            #expect(w.min == 1)
            #expect(w.max == 9)
            #expect(w.mean == 4.5)
            #expect(w.first.ts == t0 + 7_000)
            #expect(w.first.value == 9)
            #expect(w.last.ts == t0 + 12_000)
            #expect(w.last.value == 1)
            #expect(w.state == .open)
            #expect(w.revision == 0)
            #expect(w.late == 0)
        }
    }

    @Test(arguments: StoreKind.allCases) func lateReadingsUnderUpdatePolicyAreAppliedAndCounted(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0 + 1_000, 1), (t0 + 130_000, 7)])))
            var windows = try await client.windows("d1")
            #expect(windows.map(\.state) == [.closed, .open])
            // Watermark is t0+125s: the first window [t0, t0+60s) is closed.
            let (_, answer) = try await client.post(Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0 + 2_000, 2), (t0 + 3_000, 3)])))
            #expect(answer?.accepted == 2)
            #expect(answer?.late == 2)
            windows = try await client.windows("d1")
            let first = try #require(windows.first)
            #expect(first.count == 3)
            #expect(first.sum == 6)
            #expect(first.late == 2)
            #expect(first.revision == 1)
            #expect(first.state == .closed)
            #expect(windows[1].late == 0)
            #expect(windows[1].revision == 0)
            #expect(try await client.devices().first?.late == 2)
        }
    }

    @Test func lateReadingsUnderDropPolicyPastAllowedLatenessAreAuditedNotApplied() async throws {
        let harness = try CloudHarness {
            $0.latePolicy = .drop
            $0.allowedLateness = .seconds(60)
        }
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0 + 1_000, 1), (t0 + 65_000, 2), (t0 + 305_000, 3)])))
            // Watermark t0+300s. Window [t0, t0+60s) ended 240 s ago (> 60 s): dropped.
            // Window [t0+240s, t0+300s) ended 0 s ago: late but within allowed lateness: applied.
            let late = Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0 + 5_000, 10), (t0 + 250_000, 20)]))
            let (_, answer) = try await client.post(late)
            #expect(answer?.accepted == 1)
            #expect(answer?.late == 2)
            #expect(answer?.droppedLate == 1)
            let windows = try await client.windows("d1")
            #expect(windows.map(\.start) == [t0, t0 + 60_000, t0 + 240_000, t0 + 300_000])
            #expect(windows[0].count == 1)
            #expect(windows[0].sum == 1)
            #expect(windows[0].late == 0)
            #expect(windows[2].count == 1)
            #expect(windows[2].sum == 20)
            #expect(windows[2].late == 1)
            #expect(windows[2].revision == 1)

            // A resend of the dropped reading is a duplicate, not dropped twice.
            let (_, again) = try await client.post(late)
            #expect(again?.duplicates == 2)
            #expect(again?.droppedLate == 0)
            let device = try #require(try await client.devices().first)
            #expect(device.droppedLate == 1)
            #expect(device.readings == 4)
        }
        let store = try harness.openStore()
        let audited = try await store.lateDroppedCount()
        try await store.close()
        #expect(audited == 1)
    }

    @Test(arguments: StoreKind.allCases) func conflictingDuplicatesKeepTheFirstValue(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0 + 1_000, 1), (t0 + 2_000, 2)])))
            let (_, answer) = try await client.post(Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0 + 1_000, 100), (t0 + 2_000, 2)])))
            #expect(answer?.accepted == 0)
            #expect(answer?.duplicates == 2)
            #expect(answer?.conflicts == 1)
            let w = try #require(try await client.windows("d1").first)
            #expect(w.count == 2)
            #expect(w.sum == 3)
            #expect(w.max == 2)
            #expect(try await client.devices().first?.conflicts == 1)
        }
    }

    /// Stored values come back bit for bit (PostgreSQL takes raw rows as COPY text): a
    /// resend is a duplicate, never a conflict, whatever the value.
    @Test(arguments: StoreKind.allCases) func everyFiniteValueIsStoredExactly(store: StoreKind) async throws {
        let values: [Double] = [0.1, 1.0 / 3, -0.0, 5e-324, 1e-300, -123_456.789, 3.141592653589793,
                                .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 9_007_199_254_740_993]
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let sent = readings("d1", values.enumerated().map { (t0 + Int64($0.offset) * 1_000, $0.element) })
            let (_, first) = try await client.post(Batch(gateway: "gw-1", id: "b1", readings: sent))
            #expect(first?.accepted == values.count)
            let (_, again) = try await client.post(Batch(gateway: "gw-1", id: "b2", readings: sent))
            #expect(again?.duplicates == values.count)
            #expect(again?.conflicts == 0)
            let w = try #require(try await client.windows("d1").first)
            #expect(w.count == values.count)
            #expect(w.min == -.greatestFiniteMagnitude)
            #expect(w.max == .greatestFiniteMagnitude)
        }
    }

    @Test(arguments: StoreKind.allCases) func everyConfiguredWindowSizeIsMaintained(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store) { $0.windowSizes = [.seconds(10), .seconds(60), .seconds(3600)] }
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            // One reading every 5 s for 2 minutes, value = index.
            let points = (0..<24).map { (t0 + Int64($0) * 5_000, Double($0)) }
            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", points)))
            let w10 = try await client.windows("d1", size: "10s")
            #expect(w10.count == 12)
            #expect(w10.allSatisfy { $0.count == 2 })
            #expect(w10[3].sum == 6 + 7)
            let w60 = try await client.windows("d1", size: "60s")
            #expect(w60.map(\.count) == [12, 12])
            #expect(w60[1].sum == Double((12..<24).reduce(0, +)))
            let w1h = try await client.windows("d1", size: "1h")
            #expect(w1h.map(\.count) == [24])
            #expect(w1h[0].first.value == 0)
            #expect(w1h[0].last.value == 23)
            #expect(w1h[0].state == .open)
            // A range query returns windows with start in [from, to).
            let slice = try await client.windows("d1", size: "10s", query: "&from=\(t0 + 20_000)&to=\(t0 + 50_000)")
            #expect(slice.map(\.start) == [t0 + 20_000, t0 + 30_000, t0 + 40_000])
        }
    }

    @Test(arguments: StoreKind.allCases) func eachDeviceHasItsOwnWatermark(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let live = t0 + 3_600_000
            // B is live; A was offline for an hour.
            try await client.post(Batch(gateway: "gw-1", id: "live-1", readings: readings("B", [(live, 1), (live + 1_000, 2)])))
            // A's backlog, an hour old, arrives in event order: not late.
            let backlog = readings("A", (0..<120).map { (t0 + Int64($0) * 1_000, 1.0) })
            let (_, answer) = try await client.post(Batch(gateway: "gw-1", id: "backlog", readings: backlog))
            #expect(answer?.accepted == 120)
            #expect(answer?.late == 0)
            try await client.post(Batch(gateway: "gw-1", id: "live-2", readings: readings("B", [(live + 2_000, 3)])))

            let a = try await client.windows("A")
            #expect(a.map(\.count) == [60, 60])
            #expect(a.allSatisfy { $0.late == 0 && $0.revision == 0 })
            #expect(a[0].state == .closed)
            #expect(a[1].state == .open)
            let b = try await client.windows("B")
            #expect(b.count == 1)
            #expect(b[0].count == 3)
            #expect(b[0].sum == 6)
            #expect(b[0].late == 0)
            let devices = try await client.devices()
            #expect(devices.map(\.device) == ["A", "B"])
            #expect(devices[0].watermark == t0 + 119_000 - 5_000)
            #expect(devices[1].watermark == live + 2_000 - 5_000)
            #expect(devices.allSatisfy { $0.late == 0 })
        }
    }

    @Test(arguments: StoreKind.allCases) func readingsOfOneBatchNeverMakeEachOtherLate(store: StoreKind) async throws {
        // A backlog batch grouped by series (as the binary codec sends it): ten minutes of
        // temp, then the same ten minutes of hum. hum must not be late because temp came first.
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let temp = readings("d1", (0..<600).map { (t0 + Int64($0) * 1_000, 20) }, metric: "temp")
            let hum = readings("d1", (0..<600).map { (t0 + Int64($0) * 1_000, 50) }, metric: "hum")
            let (_, answer) = try await client.post(Batch(gateway: "gw-1", id: "backlog", readings: temp + hum))
            #expect(answer?.accepted == 1_200)
            #expect(answer?.late == 0)
            let w = try await client.windows("d1", "hum")
            #expect(w.count == 10)
            #expect(w.allSatisfy { $0.count == 60 && $0.late == 0 && $0.revision == 0 })
            #expect(w.map(\.state) == Array(repeating: .closed, count: 9) + [.open])
            // The next batch is judged against the advanced watermark.
            let (_, next) = try await client.post(Batch(gateway: "gw-1", id: "late", readings: readings("d1", [(t0 + 30_500, 1)], metric: "hum")))
            #expect(next?.late == 1)
        }
    }

    @Test(arguments: StoreKind.allCases) func restartKeepsEverything(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store) { $0.windowSizes = [.seconds(10), .seconds(60)] }
        defer { harness.removeFiles() }
        let batch = Batch(gateway: "gw-1", id: "b1", readings: readings("d1", (0..<30).map { (t0 + Int64($0) * 2_000, Double($0)) }),
                          drops: [DropRecord(device: "d1", metric: "temp", from: t0 - 10_000, to: t0 - 1_000, count: 7)])
        let before = try await harness.withClient { client in
            try await client.post(batch)
            return (try await client.windows("d1", size: "10s").map(\.numbers), try await client.devices())
        }
        // A new store and application on the same file.
        try await harness.withClient { client in
            #expect(try await client.windows("d1", size: "10s").map(\.numbers) == before.0)
            #expect(try await client.devices() == before.1)
            #expect(before.1.first?.droppedAtEdge == 7)
            // The dedup state survived too: a resend is all duplicates, and the drop ledger is not counted twice.
            let (_, again) = try await client.post(batch)
            #expect(again?.duplicates == 30)
            #expect(try await client.devices().first?.droppedAtEdge == 7)
            // The watermark survived: a reading for the first, closed window is late.
            let (_, late) = try await client.post(Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0 + 1, 1)])))
            #expect(late?.late == 1)
        }
    }

    @Test func aCrashLosesNoCommittedWindow() async throws {
        // Windows changed by recent batches live in the window log until a checkpoint;
        // a store reopened after a crash (no close, no checkpoint) must replay them.
        let harness = try CloudHarness { $0.windowSizes = [.seconds(10), .seconds(60)] }
        defer { harness.removeFiles() }
        let first = try harness.openStore()
        var expected: [WindowRecord] = []
        for b in 0..<5 {
            let rs = readings("d1", (0..<40).map { (t0 + Int64(b * 40 + $0) * 700, Double(($0 * 7) % 11)) })
                + readings("d2", [(t0 + Int64(b) * 1_000, Double(b))])
            _ = try await first.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b\(b)", readings: rs)), receivedAt: 0)
        }
        expected = try #require(try await first.windows(device: "d1", metric: "temp", sizeMs: 10_000, from: .min, to: .max))
        let expected60 = try #require(try await first.windows(device: "d1", metric: "temp", sizeMs: 60_000, from: .min, to: .max))
        #expect(expected.reduce(0) { $0 + $1.aggregate.count } == 200)
        let devicesBefore = try await first.devices()
        #expect(devicesBefore.map(\.readings) == [200, 5])
        try first.closeWithoutCheckpoint()

        let reopened = try harness.openStore()
        #expect(try await reopened.devices() == devicesBefore)
        #expect(try await reopened.windows(device: "d1", metric: "temp", sizeMs: 10_000, from: .min, to: .max) == expected)
        #expect(try await reopened.windows(device: "d1", metric: "temp", sizeMs: 60_000, from: .min, to: .max) == expected60)
        #expect(try await reopened.windows(device: "d2", metric: "temp", sizeMs: 60_000, from: .min, to: .max)?.first?.aggregate.count == 5)
        // And it keeps reconciling on top of the replayed windows.
        let outcome = try await reopened.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b9", readings: readings("d2", [(t0 + 5_000, 5), (t0, 0)]))), receivedAt: 0)
        #expect(outcome.accepted == 1)
        #expect(outcome.duplicates == 1)
        #expect(try await reopened.windows(device: "d2", metric: "temp", sizeMs: 60_000, from: .min, to: .max)?.first?.aggregate.count == 6)
        let d2 = try #require(try await reopened.device(named: "d2"))
        #expect(d2.readings == 6)
        #expect(d2.duplicates == 1)
        #expect(d2.watermark == t0 + 5_000 - 5_000)
        try await reopened.close()
    }

    @Test func manyBatchesAcrossCheckpointsKeepExactWindows() async throws {
        // More batches than the checkpoint interval: windows come from table + log + memory.
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        let store = try harness.openStore()
        var total = 0.0
        for b in 0..<(WriteBackLog.checkpointEvery * 2 + 5) {
            let rs = readings("d1", (0..<10).map { (t0 + Int64(b * 10 + $0) * 1_000, Double($0)) })
            total += 45
            _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b\(b)", readings: rs)), receivedAt: 0)
        }
        let windows = try #require(try await store.windows(device: "d1", metric: "temp", sizeMs: 60_000, from: .min, to: .max))
        #expect(windows.reduce(0) { $0 + $1.aggregate.count } == Int64((WriteBackLog.checkpointEvery * 2 + 5) * 10))
        #expect(windows.reduce(0) { $0 + $1.aggregate.sum } == total)
        #expect(windows.allSatisfy { $0.aggregate.count == 60 || $0.start == windows.last?.start })
        try await store.close()
        let reopened = try harness.openStore()
        #expect(try await reopened.windows(device: "d1", metric: "temp", sizeMs: 60_000, from: .min, to: .max) == windows)
        try await reopened.close()
    }

    @Test(arguments: StoreKind.allCases) func concurrentClientsWithOverlappingBatchesMatchSequentialPosting(store: StoreKind) async throws {
        // 8 clients; client k posts readings [k*50, k*50+100) of three devices, so each
        // reading is in two clients' batches.
        func batch(_ k: Int) -> Batch {
            var rs: [Reading] = []
            for i in (k * 50)..<(k * 50 + 100) {
                for device in ["a", "b", "c"] {
                    rs.append(Reading(device: device, metric: "temp", ts: t0 + Int64(i) * 500, value: Double(i % 17)))
                }
            }
            return Batch(gateway: "gw-1", id: "c\(k)", readings: rs)
        }
        let batches = (0..<8).map(batch)

        let sequential = try CloudHarness(store: store)
        defer { sequential.removeFiles() }
        let expected = try await sequential.withClient { client in
            for b in batches { try await client.post(b) }
            return (try await client.windows("a").map(\.numbers), try await client.windows("b").map(\.numbers),
                    try await client.windows("c").map(\.numbers), try await client.devices().map(\.readings))
        }

        let concurrent = try CloudHarness(store: store)
        defer { concurrent.removeFiles() }
        let got = try await concurrent.withClient { client in
            try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for b in batches { group.addTask { try await client.post(b).0 } }
                for try await status in group { #expect(status == .ok) }
            }
            return (try await client.windows("a").map(\.numbers), try await client.windows("b").map(\.numbers),
                    try await client.windows("c").map(\.numbers), try await client.devices().map(\.readings))
        }
        #expect(got.0 == expected.0)
        #expect(got.1 == expected.1)
        #expect(got.2 == expected.2)
        #expect(got.3 == expected.3)
        #expect(got.3 == [450, 450, 450])
    }

    @Test(arguments: StoreKind.allCases) func readingsOlderThanRawRetentionAreRejectedAsTooLate(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store) { $0.rawRetention = .seconds(3600) }
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0 + 7_200_000, 1)])))
            let (_, answer) = try await client.post(Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0, 5), (t0 + 7_000_000, 6)])))
            #expect(answer?.accepted == 1)
            #expect(answer?.tooLate == 1)
            #expect(answer?.rejected.map(\.index) == [0])
            #expect(try await client.windows("d1", query: "&to=\(t0 + 60_000)").isEmpty)
            #expect(try await client.devices().first?.tooLate == 1)
        }
    }

    /// A replica remembers which device rows it saw committed and skips their inserts; a
    /// row removed by hand costs one refused batch (a storage error, so the edge resends),
    /// and the resend lands.
    @Test func postgresDeviceRowRemovedByHandIsInsertedAgain() async throws {
        let harness = try CloudHarness(store: .postgres)
        defer { harness.removeFiles() }
        let database = String(harness.config.store.split(separator: "/").last ?? "")
        let store = try await harness.openConfiguredStore()
        _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0, 1)]))), receivedAt: 0)
        _ = try PostgresServer.shared().psql("DELETE FROM devices WHERE name = 'd1'", database: database)
        let next = DecodedBatch(batch: Batch(gateway: "gw-1", id: "b2", readings: readings("d1", [(t0 + 1_000, 2)])))
        await #expect(throws: WeirError.self) { _ = try await store.apply(next, receivedAt: 0) }
        let resent = try await store.apply(next, receivedAt: 0)
        #expect(resent.accepted == 1)
        #expect(try await store.device(named: "d1")?.readings == 1, "the row is new: it counts from the resend")
        try await store.close()
    }

    /// What the PostgreSQL store does not serve yet says so (501, naming PostgreSQL) instead
    /// of a 404 that reads like a wrong path; windows are served.
    @Test func postgresNamesWhatOnlySQLiteServes() async throws {
        let harness = try CloudHarness(store: .postgres)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0, 1)])))
            for uri in ["/v1/changes?after=0", "/v1/devices/d1/gaps?metric=temp", "/", "/devices/d1"] {
                try await client.execute(uri: uri, method: .get, headers: CloudHarness.readerHeaders) { response in
                    #expect(response.status == .notImplemented, "\(uri)")
                    #expect(String(buffer: response.body).contains("PostgreSQL"), "\(uri)")
                }
            }
            #expect(try await client.windows("d1").first?.count == 1)
        }
    }

    /// On PostgreSQL, `raw_retention` drops a day's partition whole once every device in it
    /// is past its own cutoff, and keeps a day a device still needs.
    @Test func postgresPruningDropsWholeDayPartitions() async throws {
        let harness = try CloudHarness(store: .postgres) { $0.rawRetention = .seconds(86_400) }
        defer { harness.removeFiles() }
        let database = String(harness.config.store.split(separator: "/").last ?? "")
        let day: Int64 = 86_400_000
        let today = WallClock.nowMs() / day * day
        func partitions() throws -> Set<String> {
            Set(try PostgresServer.shared().psql("""
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'raw'::regclass
                """, database: database).split(separator: "\n").map(String.init))
        }
        let store = try await harness.openConfiguredStore()
        let todays = "raw_p\(today / day)", tomorrows = "raw_p\(today / day + 1)"
        #expect(try partitions().isSuperset(of: [todays, tomorrows]), "partitions are created ahead at start")
        // Device a has three readings today; device c one tomorrow.
        let a = readings("a", [(today + 3_600_000, 1), (today + 3_601_000, 2), (today + 3_602_000, 3)])
        let c = readings("c", [(today + day + 3_600_000, 4)])
        _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b1", readings: a + c)), receivedAt: 0)
        // a moves two days ahead: all of today is past its cutoff; c still needs tomorrow.
        _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b2", readings: readings("a", [(today + 2 * day + 3_600_000, 5)]))), receivedAt: 0)
        #expect(try await harness.rawCount(store) == 5)
        #expect(try await store.pruneRaw() == 3)
        let left = try partitions()
        #expect(!left.contains(todays), "today's partition is dropped whole")
        #expect(left.contains(tomorrows), "tomorrow's partition holds c's reading, inside c's retention")
        #expect(try await harness.rawCount(store) == 2)
        // Windows stay; a resend of a dropped reading is too late, not new.
        #expect(try await store.windows(device: "a", metric: "temp", sizeMs: 60_000, from: .min, to: .max)?.first?.aggregate.count == 3)
        let again = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b1", readings: a)), receivedAt: 0)
        #expect(again.tooLate == 3)
        #expect(again.accepted == 0)
        try await store.close()
    }

    @Test(arguments: StoreKind.allCases) func pruningRemovesOnlyRawReadingsPastRetentionPerDevice(store kind: StoreKind) async throws {
        let harness = try CloudHarness(store: kind) { $0.rawRetention = .seconds(3600) }
        defer { harness.removeFiles() }
        let store = try await harness.openConfiguredStore()
        let old = readings("a", [(t0, 1), (t0 + 1_000, 2)]) + readings("b", [(t0, 1)])
        _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b1", readings: old)), receivedAt: 0)
        // Device a moves 2 h ahead; b stays where it was, so its reading is kept.
        _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b2", readings: readings("a", [(t0 + 7_200_000, 3)]))), receivedAt: 0)
        #expect(try await store.pruneRaw() == 2)
        #expect(try await harness.rawCount(store) == 2)
        // Windows are untouched by pruning, and a resend of a pruned reading is too late, not new.
        #expect(try await store.windows(device: "a", metric: "temp", sizeMs: 60_000, from: .min, to: .max)?.first?.aggregate.count == 2)
        let again = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b1", readings: old)), receivedAt: 0)
        #expect(again.tooLate == 2)
        #expect(again.duplicates == 1)
        #expect(again.accepted == 0)
        try await store.close()
    }

    @Test(arguments: StoreKind.allCases) func dropLedgerRowsAreReportedPerDevice(store: StoreKind) async throws {
        let harness = try CloudHarness(store: store)
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let batch = Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0, 1)]), drops: [
                DropRecord(device: "d1", metric: "temp", from: t0 - 5_000, to: t0 - 1_000, count: 5),
                DropRecord(device: "d1", metric: "hum", from: t0 - 5_000, to: t0 - 1_000, count: 3),
                DropRecord(device: "d2", metric: "temp", from: t0 - 5_000, to: t0 - 1_000, count: 4),
            ])
            try await client.post(batch)
            try await client.post(batch)
            let devices = try await client.devices()
            #expect(devices.map(\.device) == ["d1", "d2"])
            #expect(devices.map(\.droppedAtEdge) == [8, 4])
        }
    }
}

extension SQLiteReadingStore {
    /// Rows in the late-drop audit table (tests only).
    func lateDroppedCount() async throws -> Int {
        try await rawCount(sql: "SELECT COUNT(*) FROM late_dropped")
    }
}
