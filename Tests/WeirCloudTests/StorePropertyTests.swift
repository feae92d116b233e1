import Foundation
import Testing
@testable import WeirCloud
import WeirCore

/// Random batch sequences against an in-test oracle: after every batch, the live store's
/// windows and device counters equal the oracle's and equal those of a copy of the same
/// file opened as a new store (which replays the write-back log). Folds come every few
/// batches (and from the pruner), so most series have windows on both sides of a fold.
@Suite struct StorePropertyTests {
    /// What the store must answer, computed from the distinct readings alone.
    struct Oracle {
        struct Key: Hashable { var device: String; var metric: String; var ts: Int64 }
        var first: [Key: Double] = [:]
        var duplicates: [String: Int64] = [:]
        var maxTs: [String: Int64] = [:]

        mutating func add(_ batch: [Reading]) {
            for r in batch {
                let key = Key(device: r.device, metric: r.metric, ts: r.ts)
                if first[key] == nil { first[key] = r.value } else { duplicates[r.device, default: 0] += 1 }
                maxTs[r.device] = max(maxTs[r.device] ?? .min, r.ts)
            }
        }

        /// Windows of one series and size, ascending, as the aggregates a user reads.
        func windows(_ device: String, _ metric: String, size: Int64) -> [WindowAggregate] {
            var byStart: [Int64: WindowAggregate] = [:]
            for (key, value) in first where key.device == device && key.metric == metric {
                let start = WindowMath.start(of: key.ts, size: size)
                if byStart[start] == nil { byStart[start] = WindowAggregate(ts: key.ts, value: value) } else { byStart[start]!.add(ts: key.ts, value: value) }
            }
            return byStart.sorted { $0.key < $1.key }.map(\.value)
        }

        func readings(_ device: String) -> Int64 { Int64(first.keys.count { $0.device == device }) }
    }

    /// Batches of a small fleet: live readings moving forward, late ones (up to 2 h back),
    /// duplicates and conflicting resends, an outage backlog, and empty-ish batches.
    struct Generator {
        var rng: SplitMix64
        let devices = (0..<8).map { "dev-\($0)" }
        let metrics = ["v", "w"]
        var clock: [Int64]
        var sent: [Reading] = []

        init(seed: UInt64) {
            rng = SplitMix64(seed: seed)
            clock = Array(repeating: t0, count: 8)
        }

        mutating func batch() -> [Reading] {
            var out: [Reading] = []
            let size = 1 + rng.below(rng.below(4) == 0 ? 400 : 60)
            for _ in 0..<size {
                let d = rng.below(devices.count)
                let metric = metrics[rng.below(metrics.count)]
                let roll = rng.below(100)
                let ts: Int64
                if roll < 8, !sent.isEmpty {
                    // A duplicate; one in four carries another value (a conflict: the first stays).
                    var again = sent[rng.below(sent.count)]
                    if rng.below(4) == 0 { again.value += 1 }
                    out.append(again)
                    continue
                } else if roll < 20 {
                    ts = clock[d] - Int64(rng.below(7_200_000))   // late, up to 2 h
                } else if roll < 22 {
                    clock[d] += Int64(rng.below(3_600_000))        // back from an outage
                    ts = clock[d]
                } else {
                    clock[d] += Int64(1 + rng.below(15_000))
                    ts = clock[d] - Int64(rng.below(4_000))        // a little out of order
                }
                // Quarter steps add up exactly in any order, so sums compare with ==.
                let value = Double(rng.below(4_000) - 2_000) / 4
                out.append(Reading(device: devices[d], metric: metric, ts: ts, value: value))
            }
            sent.append(contentsOf: out)
            return out
        }
    }

    static let sizes: [Int64] = [10_000, 60_000, 3_600_000]

    /// Every window of every series and size, and every device row, as the store answers.
    static func answers(_ store: SQLiteReadingStore, _ generator: Generator) async throws -> ([[WindowRecord]?], [DeviceSummary]) {
        var windows: [[WindowRecord]?] = []
        for device in generator.devices {
            for metric in generator.metrics {
                for size in sizes {
                    windows.append(try await store.windows(device: device, metric: metric, sizeMs: size, from: .min, to: .max))
                }
            }
        }
        return (windows, try await store.devices())
    }

    @Test(arguments: [(UInt64(1), 3), (UInt64(2), 7), (UInt64(3), 64)])
    func liveAnswersEqualTheOracleAndTheReopenedStore(seed: UInt64, foldEvery: Int) async throws {
        let harness = try CloudHarness { $0.windowSizes = Self.sizes.map { .milliseconds($0) } }
        defer { harness.removeFiles() }
        func open() throws -> SQLiteReadingStore {
            try SQLiteReadingStore(path: harness.databasePath, settings: ReconcileSettings(harness.config), foldEvery: foldEvery)
        }
        var store = try open()
        var generator = Generator(seed: seed)
        var oracle = Oracle()
        let batches = foldEvery == 64 ? 70 : 60
        for b in 0..<batches {
            let readings = generator.batch()
            // A query racing the batch must answer the state before it or the state after it.
            let probe = (generator.devices[b % 8], generator.metrics[b % 2], Self.sizes[b % 3])
            let before = oracle.windows(probe.0, probe.1, size: probe.2)
            let current = store
            async let racing = current.windows(device: probe.0, metric: probe.1, sizeMs: probe.2, from: .min, to: .max)
            _ = try await current.apply(DecodedBatch(batch: Batch(gateway: "gw-1", id: "b\(b)", readings: readings)), receivedAt: Int64(b))
            oracle.add(readings)
            let raced = (try await racing ?? []).map(\.aggregate)
            #expect(raced == before || raced == oracle.windows(probe.0, probe.1, size: probe.2),
                    "seed \(seed) batch \(b): a query during the batch answered neither the state before nor after it")

            let live = try await Self.answers(store, generator)
            var i = 0
            for device in generator.devices {
                for metric in generator.metrics {
                    for size in Self.sizes {
                        let expected = oracle.windows(device, metric, size: size)
                        let answered = live.0[i]?.map(\.aggregate)
                        if oracle.maxTs[device] == nil {
                            #expect(answered == nil)
                        } else {
                            #expect(answered ?? [] == expected, "seed \(seed) batch \(b): \(device)/\(metric)/\(size)")
                        }
                        i += 1
                    }
                }
            }
            for summary in live.1 {
                #expect(summary.readings == oracle.readings(summary.device), "seed \(seed) batch \(b): \(summary.device) readings")
                #expect(summary.duplicates == oracle.duplicates[summary.device] ?? 0, "seed \(seed) batch \(b): \(summary.device) duplicates")
                #expect(summary.watermark == oracle.maxTs[summary.device].map { $0 - 5_000 })
            }

            // The same file as a new store sees (a consistent copy: the log is replayed).
            let copyPath = harness.directory.appendingPathComponent("copy-\(b).db").path
            try store.copy(to: copyPath)
            let reopened = try SQLiteReadingStore(path: copyPath, settings: ReconcileSettings(harness.config), foldEvery: foldEvery)
            let again = try await Self.answers(reopened, generator)
            try await reopened.close()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copyPath + suffix) }
            #expect(again.0 == live.0, "seed \(seed) batch \(b): a reopened copy answers other windows (revision, late included)")
            #expect(again.1 == live.1, "seed \(seed) batch \(b): a reopened copy answers other device rows")

            // Now and then the pruner folds, or the store restarts (clean or as after a crash).
            let period = foldEvery * 3 + 2
            switch b % period {
            case period - 3: _ = try await store.pruneRaw()
            case period - 2:
                try await store.close()
                store = try open()
            case period - 1:
                try store.closeWithoutCheckpoint()
                store = try open()
            default: break
            }
        }
        try await store.close()
    }
}
