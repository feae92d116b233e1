import ArgumentParser
import Foundation
import Logging
import WeirCore
import WeirSim

/// `weir-sim verify`: the truth's windows against the cloud's.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare the cloud's windows with the windows the truth implies.",
        discussion: """
        Recomputes every window of every --size from the truth file and fetches the cloud's \
        through GET /v1/devices/{device}/windows. Counts must match exactly, min, max, first \
        and last exactly, sum and mean to a relative 1e-9. A window with fewer readings than \
        the truth is loss (its numbers must still be those of a subset); one with more is \
        double counting. Loss the cloud reports as dropped at the edge (drop ledger) is \
        explained; --allow-loss N tolerates N more (the SIGKILL scenarios). Exits 0 when \
        verified, 1 on any unexplained difference, 64 on bad arguments, 3 when the cloud \
        cannot be read.
        """
    )

    @Option(help: "The truth file written by weir-sim run.")
    var truth = "truth.db"

    @Option(help: "The cloud's base URL.")
    var cloud = "http://127.0.0.1:8080"

    @Option(name: .customLong("size"), help: "Window size to check (repeatable or a comma list; each must be configured in the cloud).")
    var sizes: [String] = []

    @Option(help: "Readings that may be lost beyond what the edge's drop ledger explains.")
    var allowLoss = 0

    @Option(help: "First poll the cloud until its reading counts match the truth (or stop moving within the allowed loss), at most this long.")
    var wait = DurationArgument(.zero)

    @Option(help: "Reader token for the cloud's query API (or WEIR_SIM_CLOUD_TOKEN).")
    var token: String?

    @Option(help: "Also write the results as key=value lines to this file (for scripts).")
    var summary: String?

    @Option(help: "Requests to the cloud in flight at once.")
    var concurrency = 8

    @Option(help: "How many differences to print.")
    var maxDifferences = 10

    @Option(help: "Log level for diagnostics on stderr.")
    var logLevel: Logger.Level = .warning

    func run() async throws {
        bootstrapOutput(level: logLevel)
        try await exitOnError {
            var sizesMs: [Int64] = []
            for text in (sizes.isEmpty ? ["60s"] : sizes).flatMap({ $0.split(separator: ",") }) {
                let ms = try DurationText.parseMilliseconds(String(text))
                guard ms > 0 else { throw WeirError(.badArgument, "--size \(text) is not a window size") }
                if !sizesMs.contains(ms) { sizesMs.append(ms) }
            }
            guard allowLoss >= 0 else { throw WeirError(.badArgument, "--allow-loss must be 0 or more") }
            let store = try TruthStore.open(path: truth)
            let client = try CloudClient(baseURL: cloud, token: token ?? ProcessInfo.processInfo.environment["WEIR_SIM_CLOUD_TOKEN"])
            let verifier = Verifier(truth: store, cloud: client, options: .init(sizes: sizesMs, allowLoss: allowLoss, concurrency: max(1, concurrency)))
            let info = try store.summary()
            say("weir-sim verify: truth \(truth) (\(info.readings) readings from \(info.parameters["devices"] ?? "?") devices\(info.finished ? "" : ", UNFINISHED run")), cloud \(client.baseURL)")

            if wait.duration > .zero {
                let settled = try await verifier.waitForCloud(timeout: wait.duration, progress: say)
                if !settled { say("the cloud's counts did not settle within \(DurationText.format(wait.duration)); comparing what is there") }
            }
            let report: VerificationReport
            do {
                report = try await verifier.verify()
            } catch {
                FileHandle.standardError.write(Data("weir-sim: \(error)\n".utf8))
                throw ExitCode(3)
            }
            for line in report.textLines(sizes: sizesMs, maxDifferences: maxDifferences) { say(line) }
            if let summary {
                let text = report.keyValueLines(sizes: sizesMs, tally: info.tally).joined(separator: "\n") + "\n"
                do {
                    try text.write(toFile: summary, atomically: true, encoding: .utf8)
                } catch {
                    throw WeirError(.storage, "cannot write --summary \(summary)", cause: error)
                }
            }
            if !report.verified { throw ExitCode(1) }
        }
    }
}
