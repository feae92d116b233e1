import Logging
import ServiceLifecycle
import Synchronization
import WeirCore
import WeirMQTT

/// `weir-sim run`: plays a `Simulation` in real time against an MQTT broker (QoS 1, one
/// connection for all devices), records every valid reading in the truth once the broker
/// has acknowledged it, and reports progress as it goes.
///
/// A graceful shutdown (SIGINT, SIGTERM) stops publishing; what was acknowledged is in the
/// truth, which is then marked unfinished.
///
/// ```swift
/// let runner = SimulationRunner(simulation: try Simulation(options: options), mqtt: mqttConfig,
///                               truth: truth, logger: logger) { line in print(line) }
/// try await ServiceGroup(services: [runner], logger: logger).run()
/// ```
public final class SimulationRunner: Service, Sendable {
    private let simulation: Mutex<Simulation>
    private let mqtt: MQTTConfiguration
    private let truth: TruthStore
    private let logger: Logger
    private let output: @Sendable (String) -> Void
    private let progressInterval: Duration
    private let result = Mutex<RunResult?>(nil)
    /// Set on graceful shutdown: publishing stops at the next message (or retry).
    private let stopping = Atomic(false)

    /// How a run ended.
    public struct RunResult: Sendable {
        public var tally: SimulationTally
        /// False when the run was stopped before the devices flushed what they held.
        public var finished: Bool
        public var elapsed: Duration
    }

    public init(simulation: Simulation, mqtt: MQTTConfiguration, truth: TruthStore, logger: Logger,
                progressInterval: Duration = .seconds(1), output: @escaping @Sendable (String) -> Void) {
        self.simulation = Mutex(simulation)
        self.mqtt = mqtt
        self.truth = truth
        self.logger = logger
        self.progressInterval = progressInterval
        self.output = output
    }

    /// The outcome, once `run()` has returned.
    public var outcome: RunResult? { result.withLock { $0 } }

    public func run() async throws {
        let options = simulation.withLock { $0.options }
        let client: MQTTClient
        do {
            client = try MQTTClient(configuration: mqtt, logger: logger)
            try await client.connect()
        } catch {
            throw WeirError(.network, "cannot connect to the MQTT broker at \(mqtt.host):\(mqtt.port)", cause: error)
        }
        output("weir-sim run: \(options.devices) devices × \(options.metrics.count) metrics (\(options.metrics.joined(separator: ","))) at \(options.rate)/s for \(DurationText.format(options.duration)), seed \(options.seed), broker \(mqtt.host):\(mqtt.port)")

        let clock = ContinuousClock()
        let began = clock.now
        var recorder = Recorder(truth: truth)
        var finished = false
        var failure: (any Error)?
        do {
            try await withGracefulShutdownHandler {
                let ticks = self.simulation.withLock { $0.ticks }
                var nextReport = began.advanced(by: self.progressInterval)
                for tick in 0..<ticks {
                    for device in 0..<options.devices {
                        if self.stopping.load(ordering: .relaxed) { throw CancellationError() }
                        let (due, messages) = self.simulation.withLock { sim in
                            (sim.offsetMs(tick: tick, device: device), sim.step(tick: tick, device: device))
                        }
                        let dueInstant = began.advanced(by: .microseconds(Int64(due * 1000)))
                        if clock.now < dueInstant { try await clock.sleep(until: dueInstant) }
                        for message in messages {
                            try await self.publish(message, client: client)
                            recorder.add(message)
                        }
                        try recorder.flushIfDue(tally: self.simulation.withLock { $0.tally })
                        if clock.now >= nextReport {
                            nextReport = clock.now.advanced(by: self.progressInterval)
                            self.report(elapsed: began.duration(to: clock.now), behind: dueInstant.duration(to: clock.now))
                        }
                    }
                }
                let rest = self.simulation.withLock { $0.finish() }
                if !rest.isEmpty {
                    self.output("devices flush what they still hold: \(rest.count) messages")
                }
                for message in rest {
                    try await self.publish(message, client: client)
                    recorder.add(message)
                    try recorder.flushIfDue(tally: self.simulation.withLock { $0.tally })
                }
                finished = true
            } onGracefulShutdown: {
                self.stopping.store(true, ordering: .relaxed)
            }
        } catch {
            failure = error
        }
        let tally = simulation.withLock { $0.tally }
        // Record what was acknowledged even when the run was cut short.
        try recorder.flush(tally: tally, finished: finished)
        await client.disconnect()
        let elapsed = began.duration(to: clock.now)
        result.withLock { $0 = RunResult(tally: tally, finished: finished, elapsed: elapsed) }
        if let failure, !(failure is CancellationError) { throw failure }
        report(elapsed: elapsed, behind: .zero)
        output(finished ? "weir-sim run finished: " + Self.summary(tally) : "weir-sim run stopped early: " + Self.summary(tally))
    }

    /// One line with the tally's main numbers.
    public static func summary(_ t: SimulationTally) -> String {
        "\(t.messages) messages, \(t.readings) distinct readings, \(t.duplicateMessages) duplicate messages (\(t.duplicateReadings) readings), \(t.reorderedMessages) reordered, \(t.offlineEpisodes) offline episodes (\(t.backlogReadings) readings held back), \(t.skewedDevices) skewed clocks, \(t.malformedTotal) malformed"
    }

    private func report(elapsed: Duration, behind: Duration) {
        let (t, offline, held) = simulation.withLock { ($0.tally, $0.devicesOffline, $0.readingsHeld) }
        var line = "[\(Self.seconds(elapsed))] sent \(t.readings) readings in \(t.messages) messages · \(t.duplicateMessages) dup · \(t.malformedTotal) malformed · \(offline) devices offline holding \(held) readings"
        if behind > .seconds(1) { line += " · \(Self.seconds(behind)) behind schedule" }
        output(line)
    }

    private static func seconds(_ d: Duration) -> String {
        let ms = d.milliseconds
        return "\(ms / 1000).\((ms % 1000) / 100)s"
    }

    /// Publishes with QoS 1; while the broker is unreachable, retries for up to 30 s.
    private func publish(_ message: SimulatedMessage, client: MQTTClient) async throws {
        let clock = ContinuousClock()
        let giveUp = clock.now.advanced(by: .seconds(30))
        var delay = Duration.milliseconds(50)
        while true {
            do {
                try await client.publish(topic: message.topic, payload: message.payload, qos: 1)
                return
            } catch {
                try Task.checkCancellation()
                if stopping.load(ordering: .relaxed) { throw CancellationError() }
                if clock.now >= giveUp {
                    throw WeirError(.network, "publishing to \(message.topic) kept failing for 30 s", cause: error)
                }
                logger.warning("publish failed, retrying", metadata: ["weir.topic": "\(message.topic)", "weir.error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}

/// Collects acknowledged readings and writes them to the truth in batches.
private struct Recorder {
    let truth: TruthStore
    var pending: [Reading] = []
    var lastFlush = ContinuousClock.now

    init(truth: TruthStore) {
        self.truth = truth
    }

    mutating func add(_ message: SimulatedMessage) {
        if case .readings = message.kind { pending += message.readings }
    }

    mutating func flushIfDue(tally: SimulationTally) throws(WeirError) {
        if pending.count >= 20_000 || lastFlush.duration(to: .now) >= .milliseconds(250) {
            try flush(tally: tally, finished: false)
        }
    }

    mutating func flush(tally: SimulationTally, finished: Bool) throws(WeirError) {
        try truth.record(pending, tally: tally, finished: finished)
        pending.removeAll(keepingCapacity: true)
        lastFlush = .now
    }
}
