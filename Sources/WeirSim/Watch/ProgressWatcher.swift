import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import WeirCore

/// `weir-sim watch`: follows a run from outside — readings published (the truth file),
/// accepted, buffered and forwarded at the edge (its `/metrics`), stored in the cloud
/// (`/v1/devices`) — and, once the simulator is done, the backlog draining with a
/// progress bar and a rate. Remembers the peak backlog and the drain rate for the summary.
///
/// ```swift
/// let watcher = ProgressWatcher(truthPath: "truth.db", edgeMetrics: "http://127.0.0.1:9464/metrics",
///                               cloud: try CloudClient(baseURL: "http://127.0.0.1:8080"))
/// let result = try await watcher.run(until: .drained, timeout: .seconds(120)) { print($0) }
/// ```
public struct ProgressWatcher: Sendable {
    /// When to stop watching.
    public enum Goal: Sendable {
        /// When the simulator has finished and the edge's buffer is empty.
        case drained
        /// Never (until the timeout or cancellation).
        case forever
    }

    /// One look at everything.
    public struct Snapshot: Sendable, Hashable {
        public var published = 0
        public var runFinished = false
        public var edgeAccepted: Int?
        public var edgeBuffered: Int?
        public var edgeForwarded: Int?
        public var edgeDeadLetters: Int?
        public var edgeEvicted: Int?
        public var cloudReadings: Int?
    }

    /// What the watch saw.
    public struct Result: Sendable, Hashable {
        public var last = Snapshot()
        public var peakBuffered = 0
        /// Readings forwarded per second while the largest backlog drained, timed from the
        /// last sample that saw no progress (so a lower bound when the drain is quick).
        public var drainRate: Double?
        public var drainSeconds: Double?
        public var drained = false

        /// `key=value` lines for scripts.
        public var keyValueLines: [String] {
            [
                "published=\(last.published)",
                "edge_accepted=\(last.edgeAccepted ?? -1)",
                "edge_forwarded=\(last.edgeForwarded ?? -1)",
                "dead_letters=\(last.edgeDeadLetters ?? -1)",
                "edge_evicted=\(last.edgeEvicted ?? -1)",
                "cloud_readings=\(last.cloudReadings ?? -1)",
                "peak_buffered=\(peakBuffered)",
                "drain_rate=\(drainRate.map { String(Int($0.rounded())) } ?? "-")",
                "drain_seconds=\(drainSeconds.map { String(format1($0)) } ?? "-")",
                "drained=\(drained ? 1 : 0)",
            ]
        }
    }

    public let truthPath: String
    public let edgeMetrics: String?
    public let cloud: CloudClient?
    public var interval: Duration = .seconds(1)
    private let http: HTTPClient

    public init(truthPath: String, edgeMetrics: String?, cloud: CloudClient?, httpClient: HTTPClient = .shared) {
        self.truthPath = truthPath
        self.edgeMetrics = edgeMetrics
        self.cloud = cloud
        http = httpClient
    }

    /// Takes one snapshot; parts that cannot be read right now stay `nil`.
    public func snapshot() async -> Snapshot {
        var snapshot = Snapshot()
        if let truth = try? TruthStore.open(path: truthPath), let summary = try? truth.summary() {
            snapshot.published = summary.readings
            snapshot.runFinished = summary.finished
        }
        if let edgeMetrics, let text = try? await fetch(edgeMetrics) {
            let metrics = PrometheusText(text)
            snapshot.edgeAccepted = metrics.value("weir_edge_readings_accepted_total").map { Int($0) }
            snapshot.edgeBuffered = metrics.value("weir_edge_buffer_readings").map { Int($0) }
            snapshot.edgeForwarded = metrics.value("weir_edge_forwarded_readings_total").map { Int($0) }
            snapshot.edgeDeadLetters = metrics.value("weir_edge_dead_letters_total").map { Int($0) }
            snapshot.edgeEvicted = metrics.value("weir_edge_evicted_readings_total").map { Int($0) }
        }
        if let cloud, let devices = try? await cloud.devices() {
            snapshot.cloudReadings = devices.reduce(0) { $0 + Int($1.readings) }
        }
        return snapshot
    }

    /// Watches until `goal` or `timeout`; `output` hears a line per interval (and one when
    /// a backlog has drained). Samples four times as often as it prints, so a fast drain is
    /// still timed to a fraction of a second.
    public func run(until goal: Goal, timeout: Duration, output: @Sendable (String) -> Void) async -> Result {
        let clock = ContinuousClock()
        let began = clock.now
        let sampleEvery = Swift.min(interval / 4, .milliseconds(250))
        var result = Result()
        var nextPrint = began
        var tracker = BacklogTracker()
        while !Task.isCancelled {
            let snap = await snapshot()
            let now = clock.now
            let elapsed = began.duration(to: now)
            result.last = snap
            let buffered = snap.edgeBuffered ?? 0
            let drain = tracker.observe(seconds: Double(elapsed.milliseconds) / 1000, accepted: snap.edgeAccepted ?? 0,
                                        buffered: buffered, forwarded: snap.edgeForwarded ?? 0)
            result.peakBuffered = Swift.max(result.peakBuffered, tracker.largestPeak, buffered)
            result.drainRate = tracker.largestDrain?.rate
            result.drainSeconds = tracker.largestDrain?.seconds

            if now >= nextPrint || drain != nil {
                nextPrint = now.advanced(by: interval)
                var line = "[\(Self.clockText(elapsed))] published \(snap.published)"
                if let accepted = snap.edgeAccepted { line += " · edge accepted \(accepted)" }
                if let b = snap.edgeBuffered { line += " · buffered \(b)" }
                if let f = snap.edgeForwarded { line += " · forwarded \(f)" }
                if let c = snap.cloudReadings { line += " · in cloud \(c)" }
                if let d = snap.edgeDeadLetters, d > 0 { line += " · dead letters \(d)" }
                switch tracker.state {
                case .normal:
                    break
                case .building(let waiting):
                    line += "\n    backlog building: \(waiting) readings waiting for the uplink"
                case .draining(let peak, let done, let rate):
                    line += "\n    draining " + Self.bar(done) + " \(Int((done * 100).rounded()))% of \(peak) · \(Int(rate.rounded())) readings/s"
                }
                output(line)
                if let drain {
                    output("    backlog of \(drain.peak) readings drained within \(format1(drain.seconds)) s (at least \(Int(drain.rate.rounded())) readings/s forwarded)")
                }
            }

            if snap.runFinished, buffered == 0, snap.edgeBuffered != nil, (snap.edgeAccepted ?? 0) > 0 || snap.published == 0 {
                result.drained = true
                if case .drained = goal {
                    output("[\(Self.clockText(elapsed))] run finished and the edge's buffer is empty")
                    return result
                }
            }
            if elapsed >= timeout { return result }
            try? await clock.sleep(for: sampleEvery)
        }
        return result
    }

    static func bar(_ fraction: Double, width: Int = 30) -> String {
        let filled = Int((max(0, min(1, fraction)) * Double(width)).rounded())
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    static func clockText(_ d: Duration) -> String {
        let s = d.milliseconds / 1000
        return String(format2(Int(s / 60))) + ":" + String(format2(Int(s % 60)))
    }

    private func fetch(_ url: String) async throws -> String {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        let response = try await http.execute(request, timeout: .seconds(5))
        guard response.status == .ok else { throw WeirError(.network, "GET \(url) answered \(response.status.code)") }
        let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return String(buffer: body)
    }
}

private func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
private func format1(_ x: Double) -> String {
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}
