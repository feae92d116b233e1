import ArgumentParser
import Foundation
import WeirCore
import WeirEdge

/// `weir-edge run --config FILE`: start the gateway until SIGTERM.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the gateway: subscribe to the broker, buffer in SQLite, forward to weir-cloud.",
        discussion: "Every config key can be overridden by an environment variable: WEIR_EDGE_ plus the key in capitals, dots as underscores (WEIR_EDGE_UPLINK_URL)."
    )

    @Option(name: .long, help: "The YAML config file (edge/weir-edge.yaml).")
    var config: String?

    func run() async throws {
        MemoryTuning.apply()
        let configuration: EdgeConfiguration
        do {
            configuration = try EdgeConfiguration.load(file: config)
        } catch {
            throw ExitFailure("weir-edge: \(error)")
        }
        do {
            try await EdgeApp(configuration: configuration).run()
        } catch let error as WeirError {
            throw ExitFailure("weir-edge: \(error)")
        }
    }
}

/// Prints `message` to stderr and gives the exit code to throw (status 1, no usage text).
func ExitFailure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    return .failure
}
