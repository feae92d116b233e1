import ArgumentParser
import Foundation
import Logging
import WeirCore
import WeirSim

/// `weir-sim watch`: live progress of a run through edge and cloud.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a run: published, buffered and forwarded at the edge, stored in the cloud; the drain.",
        discussion: """
        Reads the truth file (published), the edge's Prometheus /metrics (accepted, buffered, \
        forwarded, dead letters) and the cloud's GET /v1/devices (stored) every --interval. \
        Once the run has finished it shows the backlog draining with a progress bar and a rate, \
        and with --until-drained stops when the edge's buffer is empty.
        """
    )

    @Option(help: "The truth file of the run.")
    var truth = "truth.db"

    @Option(help: "The edge's metrics URL (http://HOST:PORT/metrics).")
    var edgeMetrics: String?

    @Option(help: "The cloud's base URL.")
    var cloud: String?

    @Option(help: "How often to look.")
    var interval = DurationArgument(.seconds(1))

    @Option(help: "Stop after this long at the latest.")
    var timeout = DurationArgument(.seconds(600))

    @Option(help: "Reader token for the cloud's query API (or WEIR_SIM_CLOUD_TOKEN).")
    var token: String?

    @Flag(help: "Stop once the run has finished and the edge's buffer is empty.")
    var untilDrained = false

    @Option(help: "Write peak backlog, drain rate and counters as key=value lines to this file.")
    var summary: String?

    func run() async throws {
        bootstrapOutput(level: .error)
        try await exitOnError {
            let readerToken = token ?? ProcessInfo.processInfo.environment["WEIR_SIM_CLOUD_TOKEN"]
            let client = try cloud.map { url throws(WeirError) in try CloudClient(baseURL: url, token: readerToken) }
            var watcher = ProgressWatcher(truthPath: truth, edgeMetrics: edgeMetrics, cloud: client)
            watcher.interval = interval.duration
            let result = await watcher.run(until: untilDrained ? .drained : .forever, timeout: timeout.duration, output: say)
            if let summary {
                do {
                    try (result.keyValueLines.joined(separator: "\n") + "\n").write(toFile: summary, atomically: true, encoding: .utf8)
                } catch {
                    throw WeirError(.storage, "cannot write --summary \(summary)", cause: error)
                }
            }
            if untilDrained && !result.drained { throw ExitCode(1) }
        }
    }
}
