import Foundation
import GRDB
import Synchronization
import Testing
@testable import WeirCloud
import WeirCore

/// Read-after-write under folds: a query answers every batch committed before it started,
/// also while the write-back log is being folded into the window tables.
@Suite struct ReadAfterWriteTests {
    /// Starts a query at the moment a transaction that folds the window log is about to
    /// commit, and gives it time to run before the commit goes on. The issue-12 stale view
    /// was a query landing in that gap: the fold had emptied the in-memory overlay, and its
    /// rows were not yet visible to readers.
    final class FoldCommitProbe: TransactionObserver, @unchecked Sendable {
        // `folding` is only touched by GRDB on the writer's queue, one transaction at a time.
        private var folding = false
        let onFoldCommit: @Sendable () -> Void

        init(onFoldCommit: @escaping @Sendable () -> Void) { self.onFoldCommit = onFoldCommit }

        func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
            if case .delete(let table) = eventKind { return table == "window_log" }
            return false
        }
        func databaseDidChange(with event: DatabaseEvent) { folding = true }
        func databaseWillCommit() throws {
            guard folding else { return }
            onFoldCommit()
            // Long enough for the query to finish if nothing holds it back.
            Thread.sleep(forTimeInterval: 0.3)
        }
        func databaseDidCommit(_ db: Database) { folding = false }
        func databaseDidRollback(_ db: Database) { folding = false }
    }

    @Test func aQueryDuringAFoldCommitAnswersEveryCommittedBatch() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        let store = try harness.openStore()
        // (readings committed before the query started, readings the query answered)
        let answers = Mutex<[Task<(Int64, Int64), any Error>]>([])
        let committed = Mutex<Int64>(0)
        // GRDB holds observers weakly: keep the probe until the end.
        let probe = FoldCommitProbe {
            let before = committed.withLock { $0 }
            let task = Task {
                let windows = try await store.windows(device: "d1", metric: "temp", sizeMs: 60_000, from: .min, to: .max) ?? []
                return (before, windows.reduce(0) { $0 + $1.aggregate.count })
            }
            answers.withLock { $0.append(task) }
        }
        store.observeTransactions(probe)
        // A fold at the 64th batch, and one by the retention pruner after the 100th.
        for b in 0..<(WriteBackLog.checkpointEvery * 2) {
            if b == 100 { _ = try await store.pruneRaw() }
            let rs = readings("d1", (0..<10).map { (t0 + Int64(b * 10 + $0) * 1_000, Double($0)) })
            _ = try await store.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b\(b)", readings: rs)), receivedAt: 0)
            committed.withLock { $0 += 10 }
        }
        let tasks = answers.withLock { $0 }
        #expect(tasks.count == 2)
        for task in tasks {
            let (before, answered) = try await task.value
            #expect(answered >= before, "a query started with \(before) readings committed answered \(answered)")
        }
        try await store.close()
        withExtendedLifetime(probe) {}
    }
}
