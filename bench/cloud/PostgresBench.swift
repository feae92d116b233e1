// bench/run cloud-pg [--readings N] [--batch N]  (weir-bench-cloud --postgres)
//
// weir-cloud on PostgreSQL, in one run on a private server (scripts/pg-private, fsync on):
//   1. the floor: COPY of the stored raw rows (device, series, ts, value) into a table with
//      the raw table's key, one transaction per batch, through postgres-nio;
//   2. one weir-cloud replica over HTTP, one client posting every batch in turn;
//   3. the same replica, two clients (one per gateway) posting at once;
//   4. two replicas on the same database, each gateway's client posting to its own replica.
// Same readings as `bench/run cloud` (1,000 devices × 3 metrics, 5% duplicates, 10% out of
// order), default 2M, from two gateways with 500 devices each (even and odd devices: a
// fleet's gateways do not share devices), batches of --batch readings. Prints readings/s,
// the ratio to the floor, each replica's peak RSS, and checks every window of every run
// against the generator's truth.
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import WeirCloud
import WeirCompression
import WeirCore
import WeirTestSupport
import WeirWire

enum PostgresBench {
    static func run(_ options: Options) async throws {
        let total = options.readingsGiven ? options.readings : 2_000_000
        print("weir-bench-cloud --postgres: \(total) readings, 1000 devices × 3 metrics, 1 s spacing, batches of \(options.batchSize), 5% duplicates, 10% out of order")
        let server = try PostgresServer.start(fsync: true)
        defer { server.stop() }

        // The batches, encoded first (the edge encodes while it buffers), and the truth.
        // Each generated batch is split by gateway: gateway k has the devices d with d % 2 == k.
        var generator = BatchGenerator(total: total, batchSize: 2 * options.batchSize)
        var bodies: [[ByteBuffer]] = [[], []]
        var floorBatches: [[(Int64, Int64, Int64, Double)]] = []
        var seen = Set<Int64>()
        var truth: [String: [Int64: WindowAggregate]] = [:]
        while let (readings, series) = generator.next() {
            for gateway in 0..<2 {
                let mine = readings.indices.filter { series[$0] / 3 % 2 == gateway }
                let name = "gw-\(gateway + 1)"
                let batch = Batch(gateway: name, id: "\(name):\(bodies[gateway].count + 1)", readings: mine.map { readings[$0] })
                bodies[gateway].append(ByteBuffer(bytes: try WireBatch.encode(batch)))
                var rows: [(Int64, Int64, Int64, Double)] = []
                for i in mine {
                    let r = readings[i]
                    let identity = Int64(series[i]) << 40 | (r.ts - BatchGenerator.base)
                    guard seen.insert(identity).inserted else { continue }
                    rows.append((Int64(series[i] / 3), Int64(series[i]), r.ts, r.value))
                    let start = WindowMath.start(of: r.ts, size: 60_000)
                    let key = "\(r.device)/\(r.metric)"
                    if truth[key]?[start] != nil {
                        truth[key]![start]!.add(ts: r.ts, value: r.value)
                    } else {
                        truth[key, default: [:]][start] = WindowAggregate(ts: r.ts, value: r.value)
                    }
                }
                floorBatches.append(rows)
            }
        }
        let distinct = seen.count
        let wire = bodies
        let windows = truth.values.reduce(0) { $0 + $1.count }

        let floor = try await copyFloor(server, floorBatches)
        print(String(format: "floor  (COPY of the %d stored rows, one transaction per batch): %10.0f readings/s", distinct, floor))

        setenv("WEIR_BIN_DIR", URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path, 1)
        for (replicas, clients) in [(1, 1), (1, 2), (2, 2)] {
            let store = try server.createDatabase()
            var clouds: [CloudProcess] = []
            for r in 0..<replicas {
                let directory = options.directory + "/pg-\(replicas)-\(clients)-\(r)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                clouds.append(try await CloudProcess.start(in: directory, windows: ["60s"], store: store))
            }
            do {
                let urls = clouds.map(\.url)
                // What each client posts, in order: one client posts both gateways' batches in turn.
                let streams: [[ByteBuffer]] = clients == 2 ? wire
                    : [zip(wire[0], wire[1]).flatMap { [$0, $1] } + wire[0].dropFirst(wire[1].count) + wire[1].dropFirst(wire[0].count)]
                let started = ContinuousClock.now
                let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
                    for (client, stream) in streams.enumerated() {
                        let url = urls[client % replicas]
                        group.addTask {
                            var accepted = 0
                            for body in stream { accepted += try await post(body, to: url) }
                            return accepted
                        }
                    }
                    return try await group.reduce(0, +)
                }
                let took = seconds(ContinuousClock.now - started)
                let rate = Double(total) / took
                let rss = clouds.map { String(format: "%.0f MB", peakRSSMB(pid: $0.process.pid)) }.joined(separator: ", ")
                print(String(format: "%d replica%@ over HTTP, %d client%@: %10.0f readings/s   ratio to floor %.2f   (%.1f s; peak RSS %@)",
                             replicas, replicas == 1 ? "" : "s", clients, clients == 1 ? "" : "s", rate, rate / floor, took, rss))
                guard accepted == distinct else { throw BenchError("accepted \(accepted) readings, expected \(distinct) distinct") }
                let wrong = try await check(urls[replicas - 1], truth)
                print("  accepted \(accepted) = distinct readings; \(windows) windows checked on replica \(replicas): \(wrong) wrong")
                if wrong > 0 { throw BenchError("\(wrong) windows differ from the truth") }
                for cloud in clouds { await cloud.stop() }
            } catch {
                for cloud in clouds {
                    FileHandle.standardError.write(Data("weir-cloud log tail:\n\(cloud.process.outputTail())\n".utf8))
                    await cloud.stop()
                }
                throw error
            }
        }
    }

    static func post(_ body: ByteBuffer, to url: String) async throws -> Int {
        try await postWireBatch(body, to: url)["accepted"]?.value ?? 0
    }

    /// COPY of the rows into a table keyed like `raw`; readings/s over the COPY time.
    static func copyFloor(_ server: PostgresServer, _ batches: [[(Int64, Int64, Int64, Double)]]) async throws -> Double {
        let url = try server.createDatabase()
        try server.psql("""
            CREATE TABLE floor_raw (device_id bigint NOT NULL, series_id bigint NOT NULL, ts bigint NOT NULL,
                value double precision NOT NULL, PRIMARY KEY (device_id, series_id, ts))
            """, database: String(url.split(separator: "/").last!))
        let components = URLComponents(string: url)!
        let client = PostgresClient(configuration: .init(host: components.host!, port: components.port!, username: "weir",
                                                          password: nil, database: String(components.path.dropFirst()), tls: .disable))
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        var elapsed = Duration.zero
        var count = 0
        for rows in batches {
            var text = ""
            text.reserveCapacity(rows.count * 48)
            for (device, series, ts, value) in rows { text += "\(device)\t\(series)\t\(ts)\t\(value)\n" }
            let buffer = ByteBuffer(string: text)
            let start = ContinuousClock.now
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                try await connection.copyFrom(table: "floor_raw", columns: ["device_id", "series_id", "ts", "value"], logger: logger) { writer in
                    try await writer.write(buffer)
                }
                try await connection.query("COMMIT", logger: logger)
            }
            elapsed += ContinuousClock.now - start
            count += rows.count
        }
        return Double(count) / seconds(elapsed)
    }

    /// How many windows of `url` differ from the truth (each series read at once).
    static func check(_ url: String, _ truth: [String: [Int64: WindowAggregate]]) async throws -> Int {
        var wrong = 0
        for (key, expected) in truth {
            let parts = key.split(separator: "/")
            let (status, body) = try await HTTPGet.fetch("\(url)/v1/devices/\(parts[0])/windows?metric=\(parts[1])&size=60s&from=0&to=\(Int64.max)")
            guard status == 200 else { throw BenchError("GET windows of \(key) answered \(status)") }
            let answer = try JSONDecoder().decode(WindowsAnswer.self, from: body)
            var remaining = expected
            for w in answer.windows {
                guard let e = remaining.removeValue(forKey: w.start) else { wrong += 1; continue }
                if w.count != e.count || abs(w.sum - e.sum) > 1e-6 * max(1, abs(e.sum)) || w.min != e.min || w.max != e.max
                    || w.first.ts != e.firstTs || w.last.ts != e.lastTs { wrong += 1 }
            }
            wrong += remaining.count
        }
        return wrong
    }

    /// Peak resident memory of another process (VmHWM), MB.
    static func peakRSSMB(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
        }
        return 0
    }
}
