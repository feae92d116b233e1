// weir-bench-cloud: reconcile throughput of weir-cloud on its embedded SQLite store.
//
//   bench/run cloud [--readings N] [--http-readings N] [--json-readings N] [--batch N] [--skip-floor] [--dir PATH]
//   bench/run cloud --peers    (the peers' data end to end, see PeersBench.swift)
//   bench/run cloud-pg         (weir-cloud on PostgreSQL, replicas, see PostgresBench.swift)
//   bench/run cloud-tls        (HTTPS vs HTTP, see TLSBench.swift)
//   bench/run cloud --reads    (the read side: windows/s through the API, see ReadsBench.swift)
//
// Data: N readings (default 10M) over 1,000 devices × 3 metrics at 1 s spacing, in batches
// of 10k readings, 5% duplicates (from the same and the previous batch), 10% out of order
// (displaced by up to 3 s, inside max_out_of_order). The same batches go through:
//   1. the floor: a plain SQLite `INSERT OR IGNORE` loop into a (series_id, ts) table, one
//      transaction per batch, prepared statement, same pragmas (WAL, synchronous=FULL);
//   2. in-process: SQLiteReadingStore.apply (reconciler + store), windows [60s];
//   3. over HTTP on loopback: binary wire batches POSTed one at a time to a live server;
//   4. the same with JSON + zstd bodies (first --json-readings readings, default 1M).
// Prints readings/s of each, the ratio to the floor, first-vs-last million, and RSS.
// WEIR_CLOUD_WINDOW_WRITEBACK=0 compares against writing every window row per batch.
import AsyncHTTPClient
import Foundation
import GRDB
import GRDBSQLite
import Hummingbird
import Logging
import ServiceLifecycle
import NIOCore
import NIOHTTP1
import WeirCloud
import WeirCompression
import WeirCore
import WeirSupport

struct Options {
    var readings = 10_000_000
    var httpReadings: Int?
    var batchSize = 10_000
    var skipFloor = false
    var jsonReadings = 1_000_000
    var peers = false
    var postgres = false
    var readingsGiven = false
    var tls = false
    var tlsReadings = 2_000_000
    var tlsRounds = 200
    var reads = false
    var directory = FileManager.default.temporaryDirectory.appendingPathComponent("weir-bench-cloud-\(getpid())").path

    init(_ args: [String]) throws {
        var it = args.makeIterator()
        func number(_ flag: String) throws -> Int {
            guard let v = it.next(), let n = Int(v.replacingOccurrences(of: "_", with: "")), n > 0 else {
                throw BenchError("\(flag) needs a positive whole number")
            }
            return n
        }
        while let arg = it.next() {
            switch arg {
            case "--readings":
                readings = try number(arg)
                readingsGiven = true
            case "--http-readings": httpReadings = try number(arg)
            case "--batch": batchSize = try number(arg)
            case "--skip-floor": skipFloor = true
            case "--peers": peers = true
            case "--postgres": postgres = true
            case "--tls": tls = true
            case "--tls-readings": tlsReadings = try number(arg)
            case "--tls-rounds": tlsRounds = try number(arg)
            case "--reads": reads = true
            case "--json-readings":
                guard let v = it.next(), let n = Int(v.replacingOccurrences(of: "_", with: "")), n >= 0 else {
                    throw BenchError("--json-readings needs a whole number (0 skips the JSON run)")
                }
                jsonReadings = n
            case "--dir":
                guard let v = it.next() else { throw BenchError("--dir needs a path") }
                directory = v
            case "-h", "--help":
                print("usage: weir-bench-cloud [--readings N (10000000)] [--http-readings N (= readings)] [--batch N (10000)] [--json-readings N (1000000)] [--skip-floor] [--dir PATH] [--peers] [--postgres] [--reads] [--tls [--tls-readings N (2000000)] [--tls-rounds N (200)]]")
                exit(0)
            default:
                throw BenchError("unknown argument '\(arg)' (try --help)")
            }
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}


/// Produces the benchmark's batches one at a time (the whole data set never sits in memory).
struct BatchGenerator {
    static let devices = 1_000
    static let metrics = ["temp", "hum", "pres"]
    static let seriesCount = devices * metrics.count
    static let base: Int64 = 1_732_500_000_000
    static let deviceNames = (0..<devices).map { String(format: "dev-%04d", $0) }

    let batchSize: Int
    let total: Int
    var produced = 0
    var nextDistinct = 0
    var previous: [Reading] = []
    var rng = SplitMix64(state: 42)

    init(total: Int, batchSize: Int) {
        self.total = total
        self.batchSize = batchSize
    }

    /// The reading at position `j` of the ordered stream: series `j % 3000`, step `j / 3000`.
    static func ordered(_ j: Int) -> (series: Int, reading: Reading) {
        let series = j % seriesCount
        let step = j / seriesCount
        let device = series / metrics.count
        let metric = series % metrics.count
        let ts = base + Int64(step) * 1_000
        let value = 20 + Double((step * 7 + series * 13) % 200) / 10  // one decimal, like a sensor
        return (series, Reading(device: deviceNames[device], metric: metrics[metric], ts: ts, value: value))
    }

    /// The next batch, with each reading's series id (for the floor), or nil when done.
    mutating func next() -> (readings: [Reading], series: [Int])? {
        guard produced < total else { return nil }
        let size = min(batchSize, total - produced)
        let duplicates = size / 20
        let distinct = size - duplicates
        var rows: [(Int, Reading)] = (0..<distinct).map { Self.ordered(nextDistinct + $0) }
        nextDistinct += distinct
        // 10% out of order: swap with a reading up to 3 s later.
        let reach = 3 * Self.seriesCount
        for i in 0..<rows.count where Int.random(in: 0..<10, using: &rng) == 0 {
            let j = min(rows.count - 1, i + Int.random(in: 1...reach, using: &rng))
            rows.swapAt(i, j)
        }
        // 5% duplicates, half from this batch and half from the previous one.
        for k in 0..<duplicates {
            let source: (Int, Reading)
            if k % 2 == 0 || previous.isEmpty {
                source = rows[Int.random(in: 0..<distinct, using: &rng)]
            } else {
                let r = previous[Int.random(in: 0..<previous.count, using: &rng)]
                source = (Self.seriesIndex(of: r), r)
            }
            rows.insert(source, at: Int.random(in: 0...rows.count, using: &rng))
        }
        produced += size
        previous = rows.map(\.1)
        return (rows.map(\.1), rows.map(\.0))
    }

    static func seriesIndex(of r: Reading) -> Int {
        let device = Int(r.device.dropFirst(4)) ?? 0
        return device * metrics.count + (metrics.firstIndex(of: r.metric) ?? 0)
    }
}

func rssMB() -> (current: Double, peak: Double) {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kb / 1024
        }
        return 0
    }
    return (field("VmRSS:"), field("VmHWM:"))
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Throughput per million readings, to compare the first with the last: by wall clock, and
/// by the process's CPU time (which a busy shared machine disturbs much less).
struct Progress {
    var perMillion: [Double] = []
    var perMillionCPU: [Double] = []
    var elapsedInMillion: Double = 0
    var cpuInMillion: Double = 0
    var countInMillion = 0

    mutating func add(_ count: Int, _ secs: Double, cpu: Double) {
        countInMillion += count
        elapsedInMillion += secs
        cpuInMillion += cpu
        if countInMillion >= 1_000_000 {
            perMillion.append(Double(countInMillion) / elapsedInMillion)
            perMillionCPU.append(Double(countInMillion) / cpuInMillion)
            countInMillion = 0
            elapsedInMillion = 0
            cpuInMillion = 0
        }
    }
}

/// CPU seconds used by this process so far.
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func runFloor(_ options: Options) throws -> Double {
    try floorRate(path: options.directory + "/floor.db") { emit in
        var generator = BatchGenerator(total: options.readings, batchSize: options.batchSize)
        while let (readings, series) = generator.next() {
            try emit(readings.indices.map { (series[$0], readings[$0].ts, readings[$0].value) })
        }
    }
}

/// The floor: readings/s of a plain SQLite `INSERT OR IGNORE` loop into a `(ts, series_id)`
/// table, one transaction per batch that `produce` emits (as `(series, ts, value)`).
func floorRate(path: String, _ produce: ((([(Int, Int64, Double)]) throws -> Void)) throws -> Void) throws -> Double {
    var config = Configuration()
    config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA cache_size = -65536") }
    let pool = try DatabasePool(path: path, configuration: config)
    try pool.write { db in
        try db.execute(sql: "CREATE TABLE raw (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (ts, series_id)) WITHOUT ROWID")
    }
    var elapsed = Duration.zero
    var count = 0
    try produce { rows in
        let start = ContinuousClock.now
        try pool.write { db in
            let statement = try db.cachedStatement(sql: "INSERT OR IGNORE INTO raw (series_id, ts, value) VALUES (?, ?, ?)")
            let handle = statement.sqliteStatement
            for (series, ts, value) in rows {
                sqlite3_bind_int64(handle, 1, Int64(series))
                sqlite3_bind_int64(handle, 2, ts)
                sqlite3_bind_double(handle, 3, value)
                let code = sqlite3_step(handle)
                sqlite3_reset(handle)
                if code != SQLITE_DONE { throw BenchError("floor insert failed: \(code)") }
            }
        }
        elapsed += ContinuousClock.now - start
        count += rows.count
    }
    try pool.close()
    return Double(count) / seconds(elapsed)
}

func settings() -> CloudConfiguration {
    var config = CloudConfiguration()
    config.windowSizes = [.seconds(60)]
    config.listen = "127.0.0.1:0"
    config.insecureNoAuth = true
    return config
}

func runInProcess(_ options: Options) async throws -> (rate: Double, progress: Progress, accepted: Int, duplicates: Int, late: Int) {
    let store = try SQLiteReadingStore(path: options.directory + "/inprocess.db", settings: ReconcileSettings(settings()))
    var generator = BatchGenerator(total: options.readings, batchSize: options.batchSize)
    var elapsed = Duration.zero
    var progress = Progress()
    var accepted = 0, duplicates = 0, late = 0, number = 0
    while let (readings, _) = generator.next() {
        number += 1
        let decoded = DecodedBatch(batch: Batch(gateway: "gw-1", id: "gw-1:\(number)", readings: readings))
        let cpuStart = processCPUSeconds()
        let start = ContinuousClock.now
        let outcome = try store.applySync(decoded, receivedAt: 0)
        let took = ContinuousClock.now - start
        elapsed += took
        progress.add(readings.count, seconds(took), cpu: processCPUSeconds() - cpuStart)
        accepted += outcome.accepted
        duplicates += outcome.duplicates
        late += outcome.late
    }
    try await store.close()
    return (Double(options.readings) / seconds(elapsed), progress, accepted, duplicates, late)
}

/// Wire form of the HTTP run's bodies.
enum BodyFormat: String {
    case binary = "binary codec + zstd"
    case json = "JSON + zstd"

    var contentType: String { self == .binary ? "application/vnd.weir.batch" : "application/json" }
}

func runHTTP(_ options: Options, readings total: Int, format: BodyFormat = .binary) async throws -> Double {
    let store = try SQLiteReadingStore(path: options.directory + "/http-\(format == .binary ? "bin" : "json").db",
                                       settings: ReconcileSettings(settings()))
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let app = try CloudApplication.makeApplication(config: settings(), store: store, logger: logger) { address in
        portContinuation.yield(address.port)
    }
    // Encode the bodies first: the edge encodes while it buffers, not while it forwards.
    var bodies: [ByteBuffer] = []
    var generator = BatchGenerator(total: total, batchSize: options.batchSize)
    var number = 0
    while let (readings, _) = generator.next() {
        number += 1
        let batch = Batch(gateway: "gw-1", id: "gw-1:\(number)", readings: readings)
        let body = format == .binary ? try WireBatch.encode(batch) : try Zstd.compress(batch.jsonBytes(), level: 3)
        bodies.append(ByteBuffer(bytes: body))
    }
    let bytes = bodies.reduce(0) { $0 + $1.readableBytes }
    print(String(format: "  wire bodies: %.2f bytes/reading (%@)", Double(bytes) / Double(total), format.rawValue))
    let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: Double?.self) { group in
        group.addTask {
            try await serviceGroup.run()
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BenchError("server did not start") }
        let start = ContinuousClock.now
        for body in bodies {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/batches")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: format.contentType)
            if format == .json { request.headers.add(name: "Content-Encoding", value: "zstd") }
            request.body = .bytes(body)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            let answer = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else { throw BenchError("POST answered \(response.status): \(String(buffer: answer))") }
        }
        let rate = Double(total) / seconds(ContinuousClock.now - start)
        await serviceGroup.triggerGracefulShutdown()
        try await group.waitForAll()
        try await store.close()
        return rate
    }
}

enum WeirBenchCloud {
    static func run() async {
        do {
            let options = try Options(Array(CommandLine.arguments.dropFirst()))
            try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: options.directory) }
            PrometheusExport.bootstrap()
            if options.peers {
                try await PeersBench.run(options)
                return
            }
            if options.postgres {
                try await PostgresBench.run(options)
                return
            }
            if options.tls {
                try await TLSBench.run(options)
                return
            }
            if options.reads {
                try await ReadsBench.run(options)
                return
            }
            print("weir-bench-cloud: \(options.readings) readings, 1000 devices × 3 metrics, 1 s spacing, batches of \(options.batchSize), 5% duplicates, 10% out of order")

            // --skip-floor (for quick A/B runs) leaves the ratios meaningless.
            let floor = options.skipFloor ? Double.nan : try runFloor(options)
            print(String(format: "floor  (plain INSERT OR IGNORE, same readings): %10.0f readings/s", floor))

            let inProcess = try await runInProcess(options)
            print(String(format: "in-process (reconciler + SQLite store):          %10.0f readings/s   ratio to floor %.2f",
                         inProcess.rate, inProcess.rate / floor))
            print("  accepted \(inProcess.accepted), duplicates \(inProcess.duplicates), late \(inProcess.late)")
            if let first = inProcess.progress.perMillion.first, let last = inProcess.progress.perMillion.last {
                print(String(format: "  first million %.0f readings/s, last million %.0f readings/s (last/first %.2f)",
                             first, last, last / first))
            }
            if let first = inProcess.progress.perMillionCPU.first, let last = inProcess.progress.perMillionCPU.last {
                print(String(format: "  by CPU time: first million %.0f readings/CPU-s, last million %.0f (last/first %.2f)",
                             first, last, last / first))
            }
            let rssAfterInProcess = rssMB()
            print(String(format: "  RSS after in-process run: %.0f MB (peak so far %.0f MB)", rssAfterInProcess.current, rssAfterInProcess.peak))

            let httpTotal = min(options.httpReadings ?? options.readings, options.readings)
            let http = try await runHTTP(options, readings: httpTotal)
            print(String(format: "over HTTP (loopback, one client, binary batches): %9.0f readings/s   ratio to floor %.2f  (%d readings)",
                         http, http / floor, httpTotal))
            let jsonTotal = min(options.jsonReadings, options.readings)
            if jsonTotal > 0 {
                let json = try await runHTTP(options, readings: jsonTotal, format: .json)
                print(String(format: "over HTTP (loopback, one client, JSON+zstd):     %9.0f readings/s   ratio to floor %.2f  (%d readings)",
                             json, json / floor, jsonTotal))
            }
            let rss = rssMB()
            print(String(format: "RSS now %.0f MB, peak %.0f MB (whole benchmark process, incl. generator and HTTP bodies)", rss.current, rss.peak))
        } catch {
            FileHandle.standardError.write(Data("weir-bench-cloud: \(error)\n".utf8))
            exit(1)
        }
    }
}

await WeirBenchCloud.run()
