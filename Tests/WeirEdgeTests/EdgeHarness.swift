import Foundation
import Logging
import WeirCompression
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport
import WeirSupport
import WeirWire

/// One end-to-end setup: a temp folder, a real mosquitto, optionally a real weir-cloud,
/// and weir-edge processes started from a generated config. `shutdown()` stops all of it;
/// use `withEdgeHarness`, which always calls it.
final class EdgeHarness: @unchecked Sendable {
    let dir: TemporaryDirectory
    var broker: MosquittoBroker
    let cloudPort: Int
    var cloud: CloudProcess?
    var edge: EdgeProcess?
    let bufferPath: String
    let configPath: String
    /// Readings' event times start here (10 minutes ago, so no clock check trips).
    let baseTs: Int64

    init(dir: TemporaryDirectory, broker: MosquittoBroker, cloudPort: Int, edgeConfig: String) throws {
        self.dir = dir
        self.broker = broker
        self.cloudPort = cloudPort
        bufferPath = dir.file("edge.db")
        baseTs = (WallClock.nowMs() / 60_000 - 10) * 60_000
        configPath = dir.file("weir-edge.yaml")
        try writeConfig(extra: edgeConfig)
    }

    /// Writes the edge's config: the broker, buffer and cloud of this harness, the
    /// `subscriptions` (a YAML list, written from column 0), the metrics listen address,
    /// `uplinkURL` instead of this harness's cloud (e.g. a list of replicas), and `extra` top-level keys (filters, clock policy...).
    func writeConfig(subscriptions: String = "- topic: devices/{device}/telemetry\n  format: json",
                     metricsListen: String = "off", extra: String = "", uplink: String? = nil,
                     uplinkKeys: [String: String] = [:]) throws {
        let uplinkLines = uplinkKeys.sorted { $0.key < $1.key }.map { "\n  \($0.key): \($0.value)" }.joined()
        let indented = subscriptions.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        try """
            gateway: gw-1
            mqtt:
              url: \(broker.url)
              client_id: edge-test-\(broker.port)
              subscriptions:
            \(indented)
            buffer:
              path: \(bufferPath)
              flush_interval: 100ms
            uplink:
              url: \(uplink ?? "http://127.0.0.1:\(cloudPort)")
              backoff_base: 50ms
              backoff_cap: 500ms
              timeout: 5s\(uplinkLines)
            metrics:
              listen: \(metricsListen)
            \(extra)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    static func make(edgeConfig: String = "") async throws -> EdgeHarness {
        let dir = try TemporaryDirectory(prefix: "edge")
        let broker = try await MosquittoBroker.start(in: dir.path)
        return try EdgeHarness(dir: dir, broker: broker, cloudPort: try FreePort.allocate(), edgeConfig: edgeConfig)
    }

    func startCloud(tokens: [String: String] = [:], gatewayOptions: [String: [String]] = [:], extraConfig: String = "",
                    tls: TestCertificates? = nil, clientCAFile: String? = nil, readerCertificate: IssuedCertificate? = nil) async throws {
        cloud = try await CloudProcess.start(in: dir.path, port: cloudPort, tokens: tokens, gatewayOptions: gatewayOptions, windows: ["1s", "60s"],
                                             extraConfig: extraConfig, tls: tls, clientCAFile: clientCAFile, readerCertificate: readerCertificate)
    }

    func startEdge(environment: [String: String] = [:]) async throws {
        edge = try await EdgeProcess.start(config: configPath, in: dir.path, environment: environment)
    }

    /// Stops the broker (it saves its persistence file) and starts it again on the same
    /// port and folder.
    func restartBroker(downtime: Duration = .milliseconds(500)) async throws {
        await broker.stop()
        try await Task.sleep(for: downtime)
        broker = try await MosquittoBroker.start(in: dir.path, port: broker.port)
    }

    func shutdown() async {
        if let edge { await edge.process.killNow() }
        if let cloud { await cloud.kill() }
        await broker.stop()
        dir.remove()
    }

    /// What went on, for failure messages.
    func logs() -> String {
        [edge?.process.outputTail(lines: 20), cloud?.process.outputTail(lines: 10)].compactMap { $0 }.joined(separator: "\n")
    }

    // MARK: Publishing

    /// A publisher over libmosquitto (QoS 1, each publish waits for its PUBACK).
    func publisher() async throws -> MQTTClient {
        let client = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "pub-\(UInt32.random(in: 0...UInt32.max))",
                                                                    cleanSession: true), logger: Logger(label: "test-pub"))
        try await client.connect()
        return client
    }

    /// The reading with index `i`: device `d<i % devices>`, one per ms of event time, value `i`.
    func reading(_ i: Int, devices: Int) -> (topic: String, payload: [UInt8]) {
        let ts = baseTs + Int64(i)
        return ("devices/d\(i % devices)/telemetry", Array("{\"ts\": \(ts), \"temp\": \(i)}".utf8))
    }

    /// Publishes readings `range`, `concurrency` in flight at a time.
    func publish(_ range: Range<Int>, devices: Int = 4, with client: MQTTClient, concurrency: Int = 16) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = range.lowerBound
            for _ in 0..<concurrency where next < range.upperBound {
                let i = next
                next += 1
                group.addTask { let m = self.reading(i, devices: devices); try await client.publish(topic: m.topic, payload: m.payload, qos: 1) }
            }
            while try await group.next() != nil {
                if next < range.upperBound {
                    let i = next
                    next += 1
                    group.addTask { let m = self.reading(i, devices: devices); try await client.publish(topic: m.topic, payload: m.payload, qos: 1) }
                }
            }
        }
    }

    // MARK: The cloud's view

    struct DeviceRow: Decodable {
        var device: String
        var readings: Int64
        var duplicates: Int64
        var dropped_at_edge: Int64
    }

    /// Every window of `size` for `temp` of `devices` devices.
    func windows(devices: Int, size: String) async throws -> [String: [WindowsAnswer.Window]] {
        guard let cloud else { return [:] }
        var out: [String: [WindowsAnswer.Window]] = [:]
        for d in 0..<devices {
            out["d\(d)"] = try await CloudAPI.windows(of: "d\(d)", metric: "temp", size: size,
                                                      from: baseTs - 3_600_000, to: baseTs + 3_600_000, in: cloud)
        }
        return out
    }

    /// Readings counted in the cloud's 60 s windows, over all devices.
    func cloudCount(devices: Int) async throws -> Int64 {
        try await windows(devices: devices, size: "60s").values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count } }
    }

    func cloudDevices() async throws -> [DeviceRow] {
        guard let cloud else { return [] }
        return try await HTTPGet.json([DeviceRow].self, "\(cloud.url)/v1/devices", tls: cloud.clientTLS)
    }

    /// Waits until the cloud's windows hold `expected` readings (or the time is up);
    /// returns the last count seen.
    @discardableResult
    func waitForCloudCount(_ expected: Int64, devices: Int, timeout: Duration = .seconds(30)) async throws -> Int64 {
        let deadline = ContinuousClock.now + timeout
        var last: Int64 = -1
        while ContinuousClock.now < deadline {
            last = try await cloudCount(devices: devices)
            if last >= expected { return last }
            try await Task.sleep(for: .milliseconds(200))
        }
        return last
    }

    /// The expected 1 s windows of readings `indices` (count and sum per device and start).
    func expectedWindows(_ indices: some Sequence<Int>, devices: Int) -> [String: [Int64: (count: Int64, sum: Double)]] {
        var out: [String: [Int64: (count: Int64, sum: Double)]] = [:]
        for i in indices {
            let start = WindowMath.start(of: baseTs + Int64(i), size: 1000)
            out["d\(i % devices)", default: [:]][start, default: (0, 0)].count += 1
            out["d\(i % devices)", default: [:]][start, default: (0, 0)].sum += Double(i)
        }
        return out
    }

    /// Where the cloud's 1 s windows differ from the readings `indices` (count and sum per
    /// device and window; windows missing or extra): empty when exact.
    func windowMismatches(_ indices: some Sequence<Int>, devices: Int) async throws -> [String] {
        let expected = expectedWindows(indices, devices: devices)
        var problems: [String] = []
        for (device, rows) in try await windows(devices: devices, size: "1s") {
            let want = expected[device] ?? [:]
            if rows.count != want.count { problems.append("\(device): \(rows.count) windows, expected \(want.count)") }
            for w in rows where want[w.start]?.count != w.count || want[w.start]?.sum != w.sum {
                problems.append("\(device) window \(w.start): count \(w.count) sum \(w.sum), expected \(want[w.start].map { "\($0.count) / \($0.sum)" } ?? "none")")
            }
        }
        return problems
    }

    // MARK: The edge's buffer

    /// Waits until the edge has forwarded everything and taken nothing new for half a
    /// second (the broker's queue for it is empty).
    func waitForDrain(timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        var last: Int64 = -1
        var stableSince = ContinuousClock.now
        while ContinuousClock.now < deadline {
            let s = try status()
            let taken = s.counters["messages"] ?? 0
            if taken != last || s.chunks > 0 || s.pendingDropRows > 0 {
                last = taken
                stableSince = ContinuousClock.now
            } else if ContinuousClock.now - stableSince > .milliseconds(500) {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Every reading sealed in the buffer and not yet forwarded, in chunk order.
    func bufferedReadings() throws -> [Reading] {
        let buffer = try EdgeBuffer.openReadOnly(path: bufferPath)
        return try buffer.nextChunks(replay: .oldestFirst, maxBytes: .max, maxReadings: .max)
            .flatMap { try WireBatch.decode($0.body, maxSize: 1 << 26).readings }
    }

    func status() throws -> EdgeStatus {
        try EdgeBuffer.openReadOnly(path: bufferPath).status()
    }

    /// Waits until `condition` holds for the buffer's status.
    @discardableResult
    func waitForStatus(timeout: Duration = .seconds(20), _ condition: (EdgeStatus) -> Bool) async throws -> EdgeStatus {
        let deadline = ContinuousClock.now + timeout
        var last = try status()
        while !condition(last) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            last = try status()
        }
        return last
    }
}

/// Runs `body` with a harness that is always shut down (processes killed, folder removed).
func withEdgeHarness<T>(edgeConfig: String = "", _ body: (EdgeHarness) async throws -> T) async throws -> T {
    let harness = try await EdgeHarness.make(edgeConfig: edgeConfig)
    do {
        let result = try await body(harness)
        await harness.shutdown()
        return result
    } catch {
        print(harness.logs())
        await harness.shutdown()
        throw error
    }
}

/// The value of one series in a Prometheus text page: the line for `name` whose labels
/// include every one of `labels` (`device="d1"`), or the unlabelled line when `labels`
/// is empty.
func prometheusValue(_ page: String, _ name: String, _ labels: [String] = []) -> Double? {
    page.split(separator: "\n").map(String.init)
        .first { labels.isEmpty ? $0.hasPrefix(name + " ") : $0.hasPrefix(name + "{") && labels.allSatisfy($0.contains) }
        .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
}
