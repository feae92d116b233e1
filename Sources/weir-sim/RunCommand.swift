import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import WeirCore
import WeirMQTT
import WeirSim
import WeirSupport

/// `weir-sim run`: simulated devices publish JSON readings over MQTT; every distinct
/// valid reading goes into the truth file.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Publish readings from flaky simulated devices and record the ground truth.",
        discussion: """
        Each device samples every metric --rate times a second and publishes one JSON object \
        ({"ts": <epoch ms>, "temp": 21.5, ...}) with QoS 1 on devices/<device>/telemetry. \
        Values are random walks at sensor resolution around daily cycles, counters that \
        only grow, and switches; the same --seed and --start give the same messages.

        Flaky behaviour, each knob on its own random stream:
          --dup P        repeat a message (same bytes) right away or a few samples later
          --reorder P    hold a message back behind the device's next 1-3 samples
          --offline P    go offline for --offline-min..--offline-max, keep sampling, then send
                         the newest sample first and burst the backlog, shuffled, in arrays
          --skew F       fraction of devices whose clock is off by a constant -4 min..+2 min
                         (inside the edge's default max_clock_skew of 5 min, after 2000-01-01,
                         so their readings stay valid)
          --malformed P  also publish garbage: not JSON, truncated, NaN/Inf, absurd
                         timestamps, bad or over-long names, binary, empty. Never in the truth.
        Payloads without a timestamp are never sent: the edge would stamp them with its own
        receive time, which the truth cannot know.

        When sampling ends, devices flush what they still hold; the truth then holds every \
        distinct valid reading that the broker acknowledged.
        """
    )

    @Option(help: "The MQTT broker.")
    var broker = "mqtt://127.0.0.1:1883"

    @Option(help: "Number of devices.")
    var devices = 100

    @Option(help: "Samples per device per second (each sample carries every metric).")
    var rate: Double = 1

    @Option(help: "How long devices sample (e.g. 60s, 2m).")
    var duration = DurationArgument(.seconds(60))

    @Option(help: "Comma-separated metric names (temp, hum, pressure, co2, energy, battery, door, or any other).")
    var metrics = "temp,hum"

    @Option(name: .customLong("dup"), help: "Probability that a message is published twice.")
    var duplicates: Double = 0

    @Option(help: "Probability that a message is held back behind newer ones.")
    var reorder: Double = 0

    @Option(help: "Probability, per device and sample, of going offline.")
    var offline: Double = 0

    @Option(help: "Shortest offline episode.")
    var offlineMin = DurationArgument(.seconds(5))

    @Option(help: "Longest offline episode.")
    var offlineMax = DurationArgument(.seconds(20))

    @Option(help: "Fraction of devices with a skewed clock.")
    var skew: Double = 0

    @Option(help: "Probability, per device and sample, of also publishing a malformed payload.")
    var malformed: Double = 0

    @Option(help: "Malformed kinds to use: all, or a comma list of \(MalformedKind.allCases.map(\.name).joined(separator: ", ")).")
    var malformedKinds = "all"

    @Option(help: "The truth file (SQLite) to write.")
    var truth = "truth.db"

    @Flag(help: "Overwrite an existing truth file.")
    var replace = false

    @Option(help: "Random seed.")
    var seed: UInt64 = 42

    @Option(help: "Event time of the first sample: epoch ms, or 'now'.")
    var start = "now"

    @Option(help: "Topic template with a {device} level.")
    var topic = "devices/{device}/telemetry"

    @Option(help: "How often to print progress.")
    var progress = DurationArgument(.seconds(1))

    @Option(help: "Log level for diagnostics on stderr.")
    var logLevel: Logger.Level = .warning

    func run() async throws {
        bootstrapOutput(level: logLevel)
        let logger = Logger(label: "weir.sim.run")
        try await exitOnError {
            let startMs: Int64
            if start == "now" {
                startMs = WallClock.nowMs()
            } else if let ms = Int64(start) {
                startMs = ms
            } else {
                throw WeirError(.badArgument, "--start '\(start.prefix(40))' is neither epoch milliseconds nor 'now'")
            }
            guard let kinds = MalformedKind.parseList(malformedKinds) else {
                throw WeirError(.badArgument, "--malformed-kinds '\(malformedKinds.prefix(80))' names an unknown kind (known: all, \(MalformedKind.allCases.map(\.name).joined(separator: ", ")))")
            }
            guard offlineMin.duration <= offlineMax.duration else {
                throw WeirError(.badArgument, "--offline-min is longer than --offline-max")
            }
            let options = SimulationOptions(
                devices: devices, rate: rate, duration: duration.duration,
                metrics: metrics.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) },
                seed: seed, start: startMs, topic: topic,
                duplicates: duplicates, reorder: reorder, offline: offline,
                offlineLength: offlineMin.duration...offlineMax.duration,
                skew: skew, malformed: malformed, malformedKinds: kinds)
            let simulation = try Simulation(options: options)
            let mqtt: MQTTConfiguration
            do {
                mqtt = try MQTTConfiguration(url: broker, clientID: "weir-sim-\(seed)-\(getpid())", cleanSession: true)
            } catch {
                throw WeirError(.badArgument, "--broker: \(error)")
            }
            let store = try TruthStore.create(path: truth, replacing: replace)
            try store.start(options, broker: broker)
            let runner = SimulationRunner(simulation: simulation, mqtt: mqtt, truth: store, logger: logger,
                                          progressInterval: progress.duration, output: say)
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: runner, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            do {
                try await group.run()
            } catch {
                throw (error as? WeirError) ?? WeirError(.internal, "the run failed", cause: error)
            }
            if runner.outcome?.finished != true {
                say("truth \(truth) holds what was acknowledged before the stop; it is marked unfinished")
                throw ExitCode(130)
            }
            say("truth: \(truth)")
        }
    }
}
