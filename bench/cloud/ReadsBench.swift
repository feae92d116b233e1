// The read side (issue 16): windows read through the query API from a store of 10M readings.
//
//   bench/run cloud --reads            WEIR_BENCH_READS_READINGS=1000000 for a quick run
//
// Data: 1,000 devices × 3 metrics, one reading every 10 s per series (3,334 each, 10M in
// all), applied in-process in time order (batches of 10,000), windows [60s]: 1.67M windows.
// Then the HTTP server runs in this process and `--clients` (4) concurrent clients GET
// every series' windows (`/v1/devices/D/windows?metric=M&size=60s`), counting the windows
// in each answer without decoding it. Prints windows/s and MB/s.
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import WeirCloud
import WeirCore

enum ReadsBench {
    static let devices = 1_000
    static let metrics = ["temp", "hum", "pres"]
    static let periodMs: Int64 = 10_000
    static let base: Int64 = 1_732_500_000_000

    static func run(_ options: Options) async throws {
        let environment = ProcessInfo.processInfo.environment
        let total = environment["WEIR_BENCH_READS_READINGS"].flatMap { Int($0.replacingOccurrences(of: "_", with: "")) } ?? 10_000_000
        let clients = environment["WEIR_BENCH_READS_CLIENTS"].flatMap { Int($0) } ?? 4
        let perSeries = max(1, total / (devices * metrics.count))
        let names = (0..<devices).map { String(format: "dev-%04d", $0) }

        let store = try SQLiteReadingStore(path: options.directory + "/reads.db", settings: ReconcileSettings(settings()))
        var started = ContinuousClock.now
        var batch: [Reading] = []
        batch.reserveCapacity(options.batchSize)
        var number = 0
        var rng = SplitMix64(seed: 7)
        for step in 0..<perSeries {
            for d in 0..<devices {
                for (m, metric) in metrics.enumerated() {
                    let ts = base + Int64(step) * periodMs + Int64(d * 7 + m)
                    let value = 20 + Double(Int(rng.next() % 200)) / 10
                    batch.append(Reading(device: names[d], metric: metric, ts: ts, value: value))
                    if batch.count == options.batchSize {
                        number += 1
                        _ = try store.applySync(DecodedBatch(batch: Batch(gateway: "gw-1", id: "gw-1:\(number)", readings: batch)), receivedAt: 0)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
            }
        }
        if !batch.isEmpty {
            number += 1
            _ = try store.applySync(DecodedBatch(batch: Batch(gateway: "gw-1", id: "gw-1:\(number)", readings: batch)), receivedAt: 0)
        }
        let readings = perSeries * devices * metrics.count
        print(String(format: "weir-bench-cloud --reads: store of %d readings (1000 devices × 3 metrics, 10 s apart) built in-process in %.1f s",
                     readings, seconds(ContinuousClock.now - started)))

        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = try CloudApplication.makeApplication(config: settings(), store: store, logger: logger) { address in
            portContinuation.yield(address.port)
        }
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await serviceGroup.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw BenchError("server did not start") }
            let url = "http://127.0.0.1:\(port)"
            let series = names.flatMap { name in metrics.map { (name, $0) } }

            // Two passes: the first warms the page cache, the second is measured.
            for pass in 1...2 {
                started = ContinuousClock.now
                let cpuStart = processCPUSeconds()
                let counts = try await withThrowingTaskGroup(of: (windows: Int, bytes: Int).self) { readers in
                    for client in 0..<clients {
                        readers.addTask {
                            var windows = 0, bytes = 0
                            for i in stride(from: client, to: series.count, by: clients) {
                                let (device, metric) = series[i]
                                let body = try await get("\(url)/v1/devices/\(device)/windows?metric=\(metric)&size=60s")
                                windows += countWindows(body)
                                bytes += body.readableBytes
                            }
                            return (windows, bytes)
                        }
                    }
                    var sum = (windows: 0, bytes: 0)
                    for try await c in readers { sum.windows += c.windows; sum.bytes += c.bytes }
                    return sum
                }
                let took = seconds(ContinuousClock.now - started)
                let cpu = processCPUSeconds() - cpuStart
                print(String(format: "  pass %d: %d windows (%d requests, %d clients) in %.2f s: %.0f windows/s, %.1f MB/s of JSON; process CPU %.2f s (server and clients)",
                             pass, counts.windows, series.count, clients, took, Double(counts.windows) / took,
                             Double(counts.bytes) / took / 1e6, cpu))
            }
            try await ExtraReads.run(url: url, store: store, names: names)
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        try await store.close()
    }

    /// GETs `url`; throws unless 200.
    static func get(_ url: String, headers: [(String, String)] = []) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 1 << 30)
        guard response.status == .ok else { throw BenchError("GET \(url) answered \(response.status): \(String(buffer: body).prefix(300))") }
        return body
    }

    /// How many windows a windows answer holds: occurrences of `{"start":`.
    static func countWindows(_ body: ByteBuffer) -> Int {
        let needle = Array(#"{"start":"#.utf8)
        var count = 0
        body.withUnsafeReadableBytes { bytes in
            var i = 0
            let last = bytes.count - needle.count
            while i <= last {
                if bytes[i] == needle[0] && bytes[i + 1] == needle[1] && bytes[i + 2] == needle[2] && bytes[i + 3] == needle[3] {
                    var match = true
                    for k in 4..<needle.count where bytes[i + k] != needle[k] { match = false; break }
                    if match { count += 1; i += needle.count; continue }
                }
                i += 1
            }
        }
        return count
    }
}

/// Further read figures measured on the same store (the dashboard and changefeed add theirs).
enum ExtraReads {
    static func run(url: String, store: SQLiteReadingStore, names: [String]) async throws {}
}
