import WeirCore
import WeirSupport
import WeirWire

/// `weir-sim verify`: recomputes every window of every configured size from the truth,
/// fetches the cloud's through its query API, and compares them.
///
/// ```swift
/// let verifier = Verifier(truth: try TruthStore.open(path: "truth.db"),
///                         cloud: try CloudClient(baseURL: "http://127.0.0.1:8080"),
///                         options: .init(sizes: [60_000]))
/// let report = try await verifier.verify()
/// print(report.verified)
/// ```
public struct Verifier: Sendable {
    /// What to compare and how patient to be.
    public struct Options: Sendable, Hashable {
        /// Window sizes in ms; each must be one the cloud is configured with.
        public var sizes: [Int64]
        /// Loss tolerated beyond what the edge's drop ledger explains.
        public var allowLoss: Int
        /// Requests in flight at once.
        public var concurrency: Int

        public init(sizes: [Int64] = [60_000], allowLoss: Int = 0, concurrency: Int = 8) {
            self.sizes = sizes
            self.allowLoss = allowLoss
            self.concurrency = concurrency
        }
    }

    public let truth: TruthStore
    public let cloud: CloudClient
    public let options: Options

    public init(truth: TruthStore, cloud: CloudClient, options: Options) {
        self.truth = truth
        self.cloud = cloud
        self.options = options
    }

    /// Polls the cloud's device list until it holds as many readings for the truth's devices
    /// as the truth does — or, when some loss is allowed or reported (or there are more than
    /// expected), until the count is within that and has stopped moving for three seconds —
    /// or until `timeout` passes.
    /// Returns whether the counts settled; `progress` hears a line every two seconds.
    public func waitForCloud(timeout: Duration, progress: @Sendable (String) -> Void) async throws(WeirError) -> Bool {
        let expected = try truth.readingCount()
        let devices = Set(try truthDevices().keys)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var lastCount = -1
        var stableSince = clock.now
        var lastReport = clock.now.advanced(by: .seconds(-10))
        while true {
            var count = -1
            var dropped = 0
            var problem: String?
            do {
                let list = try await cloud.devices()
                count = 0
                for device in list where devices.contains(device.device) {
                    count += Int(device.readings)
                    dropped += Int(device.dropped_at_edge ?? 0)
                }
            } catch {
                problem = error.description
            }
            if count == expected { return true }
            let now = clock.now
            if count != lastCount {
                lastCount = count
                stableSince = now
            } else if count >= 0, count + dropped + options.allowLoss >= expected,
                      stableSince.duration(to: now) >= .seconds(3) {
                // Within the allowed loss, or more than expected (which only the comparison
                // can explain), and no longer moving: waiting longer will not help.
                return true
            }
            if lastReport.duration(to: now) >= .seconds(2) {
                lastReport = now
                if let problem {
                    progress("waiting for the cloud: \(problem)")
                } else {
                    progress("waiting for the cloud: \(count) of \(expected) readings stored")
                }
            }
            if now >= deadline { return false }
            do { try await Task.sleep(for: .milliseconds(500)) } catch { return false }
        }
    }

    /// Compares every window of every size; the report says what differs and whether it is
    /// explained.
    public func verify() async throws(WeirError) -> VerificationReport {
        var report = VerificationReport(allowedLoss: options.allowLoss)
        let readings = try truth.readings()
        report.readingsChecked = readings.count

        // Readings come sorted by (device, metric, ts): cut them into series.
        var series: [(key: SeriesKey, readings: ArraySlice<Reading>)] = []
        var perDevice: [String: Int] = [:]
        var begin = readings.startIndex
        while begin < readings.endIndex {
            let key = readings[begin].series
            var end = begin + 1
            while end < readings.endIndex, readings[end].device == key.device, readings[end].metric == key.metric { end += 1 }
            series.append((key, readings[begin..<end]))
            perDevice[key.device, default: 0] += end - begin
            begin = end
        }
        let maxTs = readings.map(\.ts).max() ?? 0
        let from = SimulationOptions.earliestValidTimestamp
        let to = Swift.max(maxTs, WallClock.nowMs()) + 86_400_000

        report.compareDevices(truth: perDevice, cloud: try await cloud.devices())

        struct Job: Sendable { var series: Int; var size: Int64 }
        let jobs = series.indices.flatMap { s in options.sizes.map { Job(series: s, size: $0) } }
        let cloud = self.cloud
        let keys = series.map(\.key)
        var fetched: [Int: [Int64: [WindowsAnswer.Window]]] = [:]
        do {
            try await withThrowingTaskGroup(of: (Int, Int64, [WindowsAnswer.Window]).self) { group in
                var next = 0
                func add() {
                    let job = jobs[next]
                    let key = keys[job.series]
                    group.addTask {
                        (job.series, job.size, try await cloud.windows(device: key.device, metric: key.metric, size: job.size, from: from, to: to))
                    }
                    next += 1
                }
                while next < jobs.count, next < Swift.max(1, options.concurrency) { add() }
                while let (s, size, windows) = try await group.next() {
                    fetched[s, default: [:]][size] = windows
                    if next < jobs.count { add() }
                }
            }
        } catch let error as WeirError {
            throw error
        } catch {
            throw WeirError(.network, "cannot fetch the cloud's windows", cause: error)
        }

        for (index, entry) in series.enumerated() {
            for size in options.sizes {
                let expected = ExpectedWindow.windows(of: entry.readings, size: size)
                report.compare(series: entry.key, size: size, expected: expected, observed: fetched[index]?[size] ?? [])
            }
        }
        return report
    }

    private func truthDevices() throws(WeirError) -> [String: Int] {
        try truth.deviceCounts()
    }
}
