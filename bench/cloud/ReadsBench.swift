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
                        if number % 100 == 0 {
                            say(String(format: "  ingest: %d readings in %.1f s", number * options.batchSize, seconds(ContinuousClock.now - started)))
                        }
                    }
                }
            }
        }
        if !batch.isEmpty {
            number += 1
            _ = try store.applySync(DecodedBatch(batch: Batch(gateway: "gw-1", id: "gw-1:\(number)", readings: batch)), receivedAt: 0)
        }
        // One device with a week of readings (3 metrics, every 20 s) for the device page.
        var week: [Reading] = []
        for k in 0..<(7 * 86_400 / 20) {
            for (m, metric) in metrics.enumerated() {
                week.append(Reading(device: "week-dev", metric: metric, ts: base + Int64(k) * 20_000, value: 20 + Double(m) + sin(Double(k) / 300)))
                if week.count == options.batchSize {
                    number += 1
                    _ = try store.applySync(DecodedBatch(batch: Batch(gateway: "gw-2", id: "gw-2:\(number)", readings: week)), receivedAt: 0)
                    week.removeAll(keepingCapacity: true)
                }
            }
        }
        if !week.isEmpty {
            number += 1
            _ = try store.applySync(DecodedBatch(batch: Batch(gateway: "gw-2", id: "gw-2:\(number)", readings: week)), receivedAt: 0)
        }
        let readings = perSeries * devices * metrics.count
        say(String(format: "weir-bench-cloud --reads: store of %d readings (1000 devices × 3 metrics, 10 s apart) + 90,720 (week-dev: 3 metrics, 20 s apart, 7 days) built in-process in %.1f s",
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
                say(String(format: "  pass %d: %d windows (%d requests, %d clients) in %.2f s: %.0f windows/s, %.1f MB/s of JSON; process CPU %.2f s (server and clients)",
                             pass, counts.windows, series.count, clients, took, Double(counts.windows) / took,
                             Double(counts.bytes) / took / 1e6, cpu))
            }
            try await ExtraReads.run(url: url, store: store, batchSize: options.batchSize)
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

/// The dashboard's and the changefeed's figures on the same store.
enum ExtraReads {
    static func run(url: String, store: SQLiteReadingStore, batchSize: Int) async throws {
        // Fleet page: 1,000 devices (+ week-dev). Its activity cache lives 2 s: wait it out so
        // every request computes everything.
        var times: [Double] = []
        var bytes = 0
        for _ in 0..<3 {
            try await Task.sleep(for: .milliseconds(2_100))
            let started = ContinuousClock.now
            let body = try await ReadsBench.get("\(url)/")
            times.append(seconds(ContinuousClock.now - started) * 1000)
            bytes = body.readableBytes
        }
        say(String(format: "fleet page (1001 devices): %d bytes of HTML; request time %.0f / %.0f / %.0f ms (cold cache each)", bytes, times[0], times[1], times[2]))

        // Device page: a week of 60 s windows of 3 metrics.
        times = []
        for _ in 0..<5 {
            let started = ContinuousClock.now
            let body = try await ReadsBench.get("\(url)/devices/week-dev?range=1w")
            times.append(seconds(ContinuousClock.now - started) * 1000)
            bytes = body.readableBytes
        }
        times.sort()
        say(String(format: "device page (week-dev, 1 week of 60 s windows × 3 metrics = 30,240 windows): %d bytes; request time median %.0f ms, min %.0f, max %.0f (5 requests)",
                     bytes, times[2], times[0], times[4]))

        // Changefeed: everything from cursor 0 in pages of 10,000.
        var cursor: Int64 = 0
        var changes = 0
        var started = ContinuousClock.now
        while true {
            let body = try await ReadsBench.get("\(url)/v1/changes?after=\(cursor)&limit=10000")
            let bytes = Array(body.readableBytesView)
            let count = ByteSearch.count(Array(#""cursor":"#.utf8), in: bytes[...])
            // The answer ends with "next":N}.
            guard let at = ByteSearch.lastIndex(Array(#""next":"#.utf8), in: bytes),
                  let next = Int64(String(decoding: bytes[(at + 7)...].prefix { $0 >= 48 && $0 <= 57 }, as: UTF8.self)) else { break }
            if count == 0 { break }
            changes += count
            cursor = next
        }
        let feedSeconds = seconds(ContinuousClock.now - started)
        say(String(format: "changefeed read from cursor 0: %d changes in %.1f s: %.0f changes/s (JSON pages of 10,000)", changes, feedSeconds, Double(changes) / feedSeconds))

        // Lag behind commits: an SSE consumer while batches commit (in-process, as fast as they go).
        let lags = Lags()
        let consumer = Task {
            var request = HTTPClientRequest(url: "\(url)/v1/changes?after=\(cursor)")
            request.headers.add(name: "Accept", value: "text/event-stream")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
            // Each event's data line ends with "committed_at":MS}; a chunk may cut an event.
            let key = Array(#""committed_at":"#.utf8)
            var pending: [UInt8] = []
            for try await chunk in response.body {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                pending.append(contentsOf: chunk.readableBytesView)
                var consumed = 0
                var i = 0
                while let at = ByteSearch.firstIndex(key, in: pending, from: i) {
                    var j = at + key.count
                    var value: Int64 = 0
                    while j < pending.count, pending[j] >= 48, pending[j] <= 57 { value = value * 10 + Int64(pending[j] - 48); j += 1 }
                    guard j < pending.count else { break }  // the number may go on in the next chunk
                    lags.add(now - value)
                    consumed = j
                    i = j
                }
                pending.removeFirst(consumed)
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        started = ContinuousClock.now
        let extraBatches = 200
        var rng = SplitMix64(seed: 9)
        let later = ReadsBench.base + 30 * 86_400_000
        for b in 0..<extraBatches {
            var batch: [Reading] = []
            for i in 0..<batchSize {
                let j = b * batchSize + i
                let d = j % ReadsBench.devices, m = (j / ReadsBench.devices) % 3, step = j / (ReadsBench.devices * 3)
                batch.append(Reading(device: String(format: "dev-%04d", d), metric: ReadsBench.metrics[m],
                                     ts: later + Int64(step) * 10_000 + Int64(d * 7 + m), value: Double(rng.next() % 100)))
            }
            _ = try store.applySync(DecodedBatch(batch: Batch(gateway: "gw-3", id: "gw-3:\(b)", readings: batch)), receivedAt: 0)
        }
        let ingestSeconds = seconds(ContinuousClock.now - started)
        try await Task.sleep(for: .seconds(2))
        consumer.cancel()
        _ = try? await consumer.value
        let sorted = lags.sorted()
        if sorted.isEmpty {
            say("changefeed lag: no changes seen")
        } else {
            func p(_ q: Double) -> Int64 { sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))] }
            say(String(format: "changefeed lag behind commits (SSE, %d batches of %d committed in %.1f s, %d changes seen): p50 %lld ms, p99 %lld ms, max %lld ms",
                         extraBatches, batchSize, ingestSeconds, sorted.count, p(0.5), p(0.99), sorted.last!))
        }
    }
}

/// Lags seen by the SSE consumer.
final class Lags: @unchecked Sendable {
    // Only the consumer task writes; the reader reads after cancelling it and awaiting it.
    private let lock = NSLock()
    private var values: [Int64] = []
    func add(_ v: Int64) { lock.lock(); values.append(v); lock.unlock() }
    func sorted() -> [Int64] { lock.lock(); defer { lock.unlock() }; return values.sorted() }
}

/// Prints a line at once (stdout is a file or pipe when the benchmark is logged).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Byte-string search for the benchmark's clients (Foundation's string search is slow here).
enum ByteSearch {
    static func firstIndex(_ needle: [UInt8], in bytes: [UInt8], from start: Int = 0) -> Int? {
        guard needle.count <= bytes.count, start <= bytes.count - needle.count else { return nil }
        var i = start
        while i <= bytes.count - needle.count {
            if bytes[i] == needle[0] {
                var k = 1
                while k < needle.count && bytes[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    static func lastIndex(_ needle: [UInt8], in bytes: [UInt8]) -> Int? {
        var i = bytes.count - needle.count
        while i >= 0 {
            if bytes[i] == needle[0] && Array(bytes[i..<(i + needle.count)]) == needle { return i }
            i -= 1
        }
        return nil
    }

    static func count(_ needle: [UInt8], in bytes: ArraySlice<UInt8>) -> Int {
        let array = Array(bytes)
        var n = 0, i = 0
        while let at = firstIndex(needle, in: array, from: i) { n += 1; i = at + needle.count }
        return n
    }
}
