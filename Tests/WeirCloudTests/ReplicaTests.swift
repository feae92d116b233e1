import Foundation
import Testing
@testable import WeirCloud
import WeirCore
import WeirTestSupport
import WeirWire

/// weir-cloud replicas on one PostgreSQL database (real processes, a private server):
/// whatever the interleaving, each reading is applied once and every replica answers the
/// windows an oracle computes from the distinct readings.
@Suite(.serialized) struct ReplicaTests {
    static let tokens = ["gw-1": "replica-token-1", "gw-2": "replica-token-2"]

    /// Posts a batch as JSON with its gateway's token; the status and, for 200, the answer.
    static func post(_ batch: Batch, to url: String) async throws -> (Int, BatchAnswer?) {
        let sent = try await CloudAPI.post(batch, to: url, token: tokens[batch.gateway] ?? "")
        return (sent.status, sent.answer)
    }

    /// Batches of two gateways over the same six devices, overlapping in time (every
    /// reading is in two batches), in a shuffled order; values depend only on the identity.
    static func workload(batches: Int, seed: UInt64) -> [Batch] {
        var rng = SeededRandom(seed: seed)
        var result: [Batch] = []
        for k in 0..<batches {
            var rs: [Reading] = []
            let first = k * 40
            for i in first..<(first + 80) {
                for device in ["d0", "d1", "d2", "d3", "d4", "d5"] where (i + device.hashValueStable) % 3 != 0 {
                    for metric in ["temp", "hum"] {
                        let ts = t0 + Int64(i) * 1_500
                        rs.append(Reading(device: device, metric: metric, ts: ts, value: value(device, metric, ts)))
                    }
                }
            }
            rs.shuffle(using: &rng)
            result.append(Batch(gateway: k % 2 == 0 ? "gw-1" : "gw-2", id: "b\(k)", readings: rs))
        }
        result.shuffle(using: &rng)
        return result
    }

    static func value(_ device: String, _ metric: String, _ ts: Int64) -> Double {
        Double((ts / 1_500) % 97) + Double(device.hashValueStable % 7) + (metric == "hum" ? 0.5 : 0)
    }

    /// The windows the distinct readings give: `device/metric/size` → "start n sum min max first last".
    static func oracle(_ batches: [Batch], sizes: [Int64]) -> [String: [String]] {
        var distinct: [String: [Int64: Double]] = [:]
        for batch in batches {
            for r in batch.readings { distinct["\(r.device)/\(r.metric)", default: [:]][r.ts] = r.value }
        }
        var result: [String: [String]] = [:]
        for (series, points) in distinct {
            for size in sizes {
                var windows: [Int64: WindowAggregate] = [:]
                for (ts, value) in points.sorted(by: { $0.key < $1.key }) {
                    let start = WindowMath.start(of: ts, size: size)
                    if windows[start] == nil { windows[start] = WindowAggregate(ts: ts, value: value) } else { windows[start]!.add(ts: ts, value: value) }
                }
                result["\(series)/\(size)"] = windows.sorted { $0.key < $1.key }.map { Self.numbers($0.key, $0.value) }
            }
        }
        return result
    }

    static func numbers(_ start: Int64, _ a: WindowAggregate) -> String {
        "\(start) n=\(a.count) sum=\(a.sum) min=\(a.min) max=\(a.max) first=\(a.firstTs):\(a.firstValue) last=\(a.lastTs):\(a.lastValue)"
    }

    /// What one replica answers for every series of the oracle.
    static func answered(_ url: String, series: [String]) async throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for key in series {
            let parts = key.split(separator: "/")
            let answer = try await HTTPGet.json(WindowsAnswer.self,
                "\(url)/v1/devices/\(parts[0])/windows?metric=\(parts[1])&size=\(Int64(parts[2])! / 1000)s&from=0&to=\(Int64.max)")
            result[key] = answer.windows.map { w in
                numbers(w.start, WindowAggregate(count: w.count, sum: w.sum, min: w.min, max: w.max,
                                                 firstTs: w.first.ts, firstValue: w.first.value, lastTs: w.last.ts, lastValue: w.last.value))
            }
        }
        return result
    }

    static func startReplicas(_ count: Int, store: String, in directory: String) async throws -> [CloudProcess] {
        try await withThrowingTaskGroup(of: CloudProcess.self) { group in
            for i in 0..<count {
                let folder = "\(directory)/r\(i)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                group.addTask { try await CloudProcess.start(in: folder, tokens: tokens, windows: ["10s", "60s"], store: store) }
            }
            var replicas: [CloudProcess] = []
            for try await replica in group { replicas.append(replica) }
            return replicas
        }
    }

    @Test(arguments: [2, 3])
    func replicasWithRacingClientsGiveTheOracleAnswer(replicas count: Int) async throws {
        let dir = try TemporaryDirectory(prefix: "weir-replicas")
        defer { dir.remove() }
        let store = try PostgresServer.shared().createDatabase()
        let replicas = try await Self.startReplicas(count, store: store, in: dir.path)
        defer { for replica in replicas { Task { await replica.stop() } } }
        let urls = replicas.map(\.url)
        let batches = Self.workload(batches: 24, seed: UInt64(count))
        let distinct = Set(batches.flatMap { $0.readings.map { "\($0.device)/\($0.metric)/\($0.ts)" } }).count

        // 6 clients take batches in turn, each to a replica of its own choice; every
        // fourth batch is raced to two replicas at once.
        let next = LockedCounter()
        let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
            for client in 0..<6 {
                group.addTask {
                    var accepted = 0
                    while let i = next.take(below: batches.count) {
                        let batch = batches[i]
                        let a = urls[(i + client) % urls.count]
                        if i % 4 == 0 {
                            let b = urls[(i + client + 1) % urls.count]
                            async let first = Self.post(batch, to: a)
                            async let second = Self.post(batch, to: b)
                            let (one, two) = try await (first, second)
                            #expect(one.0 == 200 && two.0 == 200, "batch \(batch.id): \(one.0), \(two.0)")
                            // Applied once: one of the two accepts, the other sees duplicates.
                            accepted += (one.1?.accepted ?? 0) + (two.1?.accepted ?? 0)
                            #expect((one.1?.duplicates ?? 0) + (two.1?.duplicates ?? 0) >= batch.readings.count)
                        } else {
                            let (status, answer) = try await Self.post(batch, to: a)
                            #expect(status == 200, "batch \(batch.id): \(status)")
                            accepted += answer?.accepted ?? 0
                        }
                    }
                    return accepted
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(accepted == distinct, "every distinct reading is accepted exactly once across replicas")

        let expected = Self.oracle(batches, sizes: [10_000, 60_000])
        for url in urls {
            let got = try await Self.answered(url, series: expected.keys.sorted())
            for key in expected.keys.sorted() {
                #expect(got[key] == expected[key], "\(url) \(key)")
            }
            let devices = try await HTTPGet.json([DeviceSummary].self, "\(url)/v1/devices")
            #expect(devices.map(\.readings).reduce(0, +) == Int64(distinct))
        }
    }

    @Test func threeReplicasStartingAtOnceApplyTheMigrationsOnce() async throws {
        let dir = try TemporaryDirectory(prefix: "weir-replicas-migrate")
        defer { dir.remove() }
        let server = try PostgresServer.shared()
        let store = try server.createDatabase()
        let replicas = try await Self.startReplicas(3, store: store, in: dir.path)
        defer { for replica in replicas { Task { await replica.stop() } } }
        let database = String(store.split(separator: "/").last!)
        #expect(try server.psql("SELECT count(*) FROM weir_schema_migrations", database: database)
                == "\(PostgresSchema.migrations.count)")
        #expect(try server.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM weir_schema_migrations", database: database)
                == PostgresSchema.migrations.map { "\($0.version)" }.joined(separator: ","))
        for (i, replica) in replicas.enumerated() {
            let batch = Batch(gateway: "gw-1", id: "m\(i)", readings: readings("d\(i)", [(t0 + 1_000, 1), (t0 + 2_000, 2)]))
            let (status, answer) = try await Self.post(batch, to: replica.url)
            #expect(status == 200)
            #expect(answer?.accepted == 2)
        }
    }

    @Test func postgresRestartAnswers503ThenEverythingLands() async throws {
        let dir = try TemporaryDirectory(prefix: "weir-replicas-pg-restart")
        defer { dir.remove() }
        let server = try PostgresServer.start()
        defer { server.stop() }
        let cloud = try await CloudProcess.start(in: dir.path, tokens: Self.tokens, windows: ["10s", "60s"],
                                                 environment: ["WEIR_CLOUD_STORE_TIMEOUT": "3s"], store: server.url())
        defer { Task { await cloud.stop() } }
        let batches = Self.workload(batches: 12, seed: 7)
        var pending = batches
        var refused = 0
        var answered = 0
        for (i, batch) in batches.enumerated() {
            if i == 4 { try server.pause() }
            if i == 8 {
                // Down: the store cannot commit, and says so.
                let health = try await HTTPGet.fetch("\(cloud.url)/healthz")
                #expect(health.status == 503, "healthz while PostgreSQL is down: \(String(decoding: health.body, as: UTF8.self))")
                try server.resume()
            }
            let (status, _) = try await Self.post(batch, to: cloud.url)
            if status == 200 {
                answered += 1
                pending.removeAll { $0.id == batch.id }
            } else {
                #expect(status == 503, "batch \(batch.id) while PostgreSQL is down")
                refused += 1
            }
        }
        #expect(refused >= 4, "batches sent while PostgreSQL was down are refused, not lost")
        // The sender keeps what was refused and resends it, as the edge does.
        for batch in pending {
            var status = 0
            for _ in 0..<40 where status != 200 {
                status = try await Self.post(batch, to: cloud.url).0
                if status != 200 { try await Task.sleep(for: .milliseconds(250)) }
            }
            #expect(status == 200, "batch \(batch.id) after PostgreSQL came back")
        }
        #expect(try await HTTPGet.fetch("\(cloud.url)/healthz").status == 200)
        let expected = Self.oracle(batches, sizes: [10_000, 60_000])
        let got = try await Self.answered(cloud.url, series: expected.keys.sorted())
        for key in expected.keys.sorted() { #expect(got[key] == expected[key], "\(key)") }
    }
}

/// Hands out 0, 1, 2, ... to concurrent takers.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }
}

/// A small deterministic generator (SplitMix64) for reproducible shuffles.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension String {
    /// A hash that is the same in every process (Swift's `hashValue` is seeded per process).
    var hashValueStable: Int { utf8.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF } }
}
