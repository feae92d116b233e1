// weir-bench-edge: the gateway's throughput, measured in one run against baselines from
// the same run (the machine is shared and noisy; ratios are what carry over).
//
//   bench/run edge [--messages N] [--devices N]
//
// 1. Broker ceiling: a libmosquitto publisher (QoS 1, 3 metrics per message, 10,000
//    devices) as fast as it goes, delivered to a bare `mosquitto_sub -q 1` (to /dev/null).
// 2. Edge ingest: the same publishing with a release `weir-edge` subscribed instead;
//    time until every reading is sealed in its SQLite buffer, its CPU (user+sys over
//    wall time) and peak RSS, and buffer bytes on disk per reading. The cloud is down, so
//    the readings stay: a backlog.
// 3. Drain: a release `weir-cloud` (SQLite store) comes up; time until the edge's buffer
//    is empty.
import Foundation
import Logging
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport

// MARK: Arguments

var parsedMessages = 333_334        // × 3 metrics = 1,000,002 readings
var parsedDevices = 10_000
var parsedConcurrency = 256
var parsedPublishers = 2
do {
    var args = CommandLine.arguments.dropFirst()
    while let a = args.popFirst() {
        switch a {
        case "--messages": parsedMessages = args.popFirst().flatMap(Int.init) ?? parsedMessages
        case "--devices": parsedDevices = args.popFirst().flatMap(Int.init) ?? parsedDevices
        case "--concurrency": parsedConcurrency = args.popFirst().flatMap(Int.init) ?? parsedConcurrency
        case "--publishers": parsedPublishers = args.popFirst().flatMap(Int.init) ?? parsedPublishers
        default:
            FileHandle.standardError.write(Data("usage: weir-bench-edge [--messages N] [--devices N] [--concurrency N] [--publishers N]\n".utf8))
            exit(2)
        }
    }
}
let messages = parsedMessages
let devices = parsedDevices
let concurrency = parsedConcurrency
let publisherCount = max(1, parsedPublishers)
let readingsTotal = messages * 3

// MARK: Helpers

func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

/// CPU seconds (user + system) a process has used, from /proc.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Peak resident set size in bytes (VmHWM).
func peakRSS(_ pid: Int32) -> Int64 {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int64($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

/// A process's resident memory from /proc/PID/status: total, anonymous (heap, stacks)
/// and file-backed (code and libraries), in bytes.
struct MemorySample: Sendable {
    var rss: Int64 = 0
    var anon: Int64 = 0
    var file: Int64 = 0

    init() {}

    init?(pid: Int32) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") {
            let kb = (line.split(separator: " ").compactMap { Int64($0) }.first ?? 0) * 1024
            if line.hasPrefix("VmRSS:") { rss = kb } else if line.hasPrefix("RssAnon:") { anon = kb } else if line.hasPrefix("RssFile:") { file = kb }
        }
    }

    var text: String {
        String(format: "%.1f MB (anon %.1f + file-backed %.1f)", Double(rss) / 1e6, Double(anon) / 1e6, Double(file) / 1e6)
    }
}

/// Samples `pid` every 20 ms until cancelled; the task's value is the sample with the
/// highest RSS (a phase's peak and what it was made of; short spikes between samples can
/// escape it, the kernel's VmHWM cannot).
func samplePeak(_ pid: Int32) -> Task<MemorySample, Never> {
    Task.detached {
        var peak = MemorySample()
        while !Task.isCancelled {
            if let m = MemorySample(pid: pid), m.rss > peak.rss { peak = m }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return peak
    }
}

func fileSize(_ path: String) -> Int64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
}

/// Message `i`: device `dev-<i % devices>`, one message per device per second of event
/// time, three metrics as quantized random walks (0.1 resolution).
struct Payloads {
    let base: Int64
    let devices: Int
    func message(_ i: Int) -> (topic: String, payload: [UInt8]) {
        let d = i % devices
        let k = i / devices
        let ts = base + Int64(k) * 1000 + Int64(d % 997)
        // A cheap deterministic walk: values move by small steps around device-specific levels.
        let step = Double((i &* 2_654_435_761) % 7) - 3
        let temp = (200.0 + Double(d % 50) + step) / 10
        let hum = (400.0 + Double(d % 30) * 2 + step) / 10
        let pressure = (10_130.0 + Double(k % 20) + step) / 10
        let body = "{\"ts\":\(ts),\"temp\":\(temp),\"hum\":\(hum),\"pressure\":\(pressure)}"
        return ("devices/dev-\(d)/telemetry", Array(body.utf8))
    }
}

/// Publishes messages `0..<count` with `concurrency` QoS 1 publishes in flight, spread
/// over the publisher connections (each has its own libmosquitto network thread).
func publishAll(_ clients: [MQTTClient], _ payloads: Payloads, count: Int, concurrency: Int) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        let perTask = (count + concurrency - 1) / concurrency
        for t in 0..<concurrency {
            let lo = t * perTask
            let hi = min(count, lo + perTask)
            if lo >= hi { continue }
            let client = clients[t % clients.count]
            group.addTask {
                for i in lo..<hi {
                    let m = payloads.message(i)
                    try await client.publish(topic: m.topic, payload: m.payload, qos: 1)
                }
            }
        }
        try await group.waitForAll()
    }
}

func publishers(_ broker: MosquittoBroker, _ name: String, count: Int) async throws -> [MQTTClient] {
    var clients: [MQTTClient] = []
    for k in 0..<count {
        var config = MQTTConfiguration(port: broker.port, clientID: "\(name)-\(k)", cleanSession: true)
        config.keepAlive = 60
        let client = try MQTTClient(configuration: config, logger: Logger(label: "bench-pub"))
        try await client.connect()
        clients.append(client)
    }
    return clients
}

// MARK: Programs

let root = PackagePaths.root
let releaseBin: String = {
    if let dir = ProcessInfo.processInfo.environment["WEIR_BENCH_BIN"] { return dir }   // e.g. a debug build, for a smoke run
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["swift", "build", "-c", "release", "--show-bin-path"]
    p.currentDirectoryURL = URL(fileURLWithPath: root)
    let out = Pipe()
    p.standardOutput = out
    try? p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}()
for product in ["weir-edge", "weir-cloud"] where !FileManager.default.isExecutableFile(atPath: "\(releaseBin)/\(product)") {
    say("building \(product) (release)…")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["swift", "build", "-c", "release", "--product", product]
    p.currentDirectoryURL = URL(fileURLWithPath: root)
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { say("building \(product) failed"); exit(1) }
}

let dir = try TemporaryDirectory(prefix: "bench-edge")
let broker = try await MosquittoBroker.start(in: dir.path, extraConfig: "max_inflight_messages 100\n")
var started: [ManagedProcess] = [broker.process]
func cleanUp(_ processes: [ManagedProcess]) async {
    for p in processes.reversed() { await p.terminate(grace: .seconds(10)) }
    dir.remove()
}

do {
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    let payloads = Payloads(base: now - Int64(messages / devices + 2) * 1000 - 60_000, devices: devices)
    say("weir-bench-edge: \(messages) messages × 3 metrics = \(readingsTotal) readings, \(devices) devices, QoS 1, \(concurrency) publishes in flight over \(publisherCount) connections")

    // 1. Broker ceiling to a bare subscriber.
    let sub = try ManagedProcess.start(
        name: "mosquitto_sub", executable: try PackagePaths.systemProgram("mosquitto_sub"),
        arguments: ["-h", "127.0.0.1", "-p", "\(broker.port)", "-q", "1", "-t", "devices/+/telemetry", "-C", "\(messages)", "-i", "bench-sub"],
        logDirectory: dir.path)
    started.append(sub)
    try await Task.sleep(for: .milliseconds(500))
    let pubA = try await publishers(broker, "bench-pub-a", count: publisherCount)
    let subCPU0 = cpuSeconds(sub.pid)
    let t0 = ContinuousClock.now
    try await publishAll(pubA, payloads, count: messages, concurrency: concurrency)
    let published = ContinuousClock.now - t0
    _ = await sub.waitForExit(timeout: .seconds(600))
    let ceilingTime = ContinuousClock.now - t0
    for p in pubA { await p.disconnect() }
    let ceiling = Double(messages) / ceilingTime.seconds
    say(String(format: "broker → mosquitto_sub -q 1:  %.0f msg/s (%.0f readings/s); publisher alone %.0f msg/s", ceiling, ceiling * 3,
               Double(messages) / published.seconds))
    _ = subCPU0

    // 2. Edge ingest into its buffer (cloud down).
    let cloudPort = try FreePort.allocate()
    let bufferPath = dir.file("edge.db")
    let config = try dir.write("edge.yaml", """
        gateway: bench
        log_level: warning
        mqtt:
          url: \(broker.url)
          client_id: bench-edge
        buffer:
          path: \(bufferPath)
        uplink:
          url: http://127.0.0.1:\(cloudPort)
          backoff_base: 50ms
          backoff_cap: 300ms
        metrics:
          listen: off
        """)
    let edge = try ManagedProcess.start(name: "weir-edge", executable: "\(releaseBin)/weir-edge",
                                        arguments: ["run", "--config", config], logDirectory: dir.path)
    started.append(edge)
    try await edge.waitForOutput(containing: "weir-edge running", timeout: .seconds(30))
    let pubB = try await publishers(broker, "bench-pub-b", count: publisherCount)
    let idleMemory = MemorySample(pid: edge.pid) ?? MemorySample()
    let ingestSampler = samplePeak(edge.pid)
    let edgeCPU0 = cpuSeconds(edge.pid)
    let t1 = ContinuousClock.now
    try await publishAll(pubB, payloads, count: messages, concurrency: concurrency)
    var accepted: Int64 = 0
    while accepted < Int64(readingsTotal) {
        try await Task.sleep(for: .milliseconds(50))
        accepted = (try? EdgeBuffer.openReadOnly(path: bufferPath).status().counters["accepted_readings"]) ?? 0
        if ContinuousClock.now - t1 > .seconds(900) { say("edge did not take every reading in time"); break }
    }
    let ingestTime = ContinuousClock.now - t1
    let edgeCPU = cpuSeconds(edge.pid) - edgeCPU0
    ingestSampler.cancel()
    let ingestMemory = await ingestSampler.value
    for p in pubB { await p.disconnect() }
    let backlog = try EdgeBuffer.openReadOnly(path: bufferPath).status()
    let ingestRate = Double(messages) / ingestTime.seconds
    let diskBytes = fileSize(bufferPath) + fileSize(bufferPath + "-wal")
    say(String(format: "edge ingest into SQLite:      %.0f msg/s (%.0f readings/s) = %.2f × the bare-subscriber ceiling (target ≥ 0.9)",
               ingestRate, ingestRate * 3, ingestRate / ceiling))
    say(String(format: "edge CPU while ingesting:     %.2f cores (target ≤ 1)", edgeCPU / ingestTime.seconds))
    say(String(format: "buffer on disk:               %.2f B/reading in chunk bodies, %.2f B/reading as files (db+wal %lld bytes) (target ≤ 4)",
               Double(backlog.bytes) / Double(max(1, backlog.readings)), Double(diskBytes) / Double(max(1, backlog.readings)), diskBytes))
    say("backlog:                      \(backlog.readings) readings in \(backlog.chunks) chunks")
    say(String(format: "edge peak RSS after ingest:   %.1f MB", Double(peakRSS(edge.pid)) / 1_000_000))

    // 3. Drain into a local weir-cloud.
    let cloud = try await CloudProcess.startBinary("\(releaseBin)/weir-cloud", in: dir.path, port: cloudPort)
    started.insert(cloud, at: 1)
    let drainSampler = samplePeak(edge.pid)
    let t2 = ContinuousClock.now
    var firstForward: ContinuousClock.Instant?
    var left = backlog
    while left.chunks > 0 {
        try await Task.sleep(for: .milliseconds(50))
        left = try EdgeBuffer.openReadOnly(path: bufferPath).status()
        if firstForward == nil, (left.counters["forwarded_readings"] ?? 0) > 0 { firstForward = ContinuousClock.now }
        if ContinuousClock.now - t2 > .seconds(900) { say("drain did not finish in time"); break }
    }
    let drainTime = ContinuousClock.now - t2
    drainSampler.cancel()
    let drainMemory = await drainSampler.value
    let drained = Double(left.counters["forwarded_readings"] ?? 0)
    say(String(format: "drain into weir-cloud:        %.0f readings/s over %.1f s (target ≥ 100000)", drained / drainTime.seconds, drainTime.seconds))
    say("edge RSS by phase (sampled every 20 ms): idle \(idleMemory.text); ingest peak \(ingestMemory.text); drain peak \(drainMemory.text)")
    say(String(format: "edge peak RSS (whole run):    %.1f MB (target < 50)", Double(peakRSS(edge.pid)) / 1_000_000))
    _ = firstForward
    await cleanUp(started)
} catch {
    say("weir-bench-edge failed: \(error)")
    await cleanUp(started)
    exit(1)
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

extension CloudProcess {
    /// A weir-cloud from a given binary (the release build), no auth, SQLite store.
    static func startBinary(_ binary: String, in directory: String, port: Int) async throws -> ManagedProcess {
        let process = try ManagedProcess.start(
            name: "weir-cloud", executable: binary,
            arguments: ["serve", "--listen", "127.0.0.1:\(port)", "--store", "sqlite:\(directory)/cloud.db", "--insecure-no-auth"],
            logDirectory: directory)
        try await process.waitForOutput(containing: "weir-cloud listening on", timeout: .seconds(30))
        return process
    }
}
