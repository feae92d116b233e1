import ArgumentParser
import Foundation
import WeirCore
import WeirEdge

/// `weir-edge status --config FILE`: the buffer and uplink at a glance (reads the SQLite
/// file; works while the edge runs).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show buffer depth (chunks, readings, bytes), oldest age, forward lag, quarantined, rejected, dead letters and the last uplink error."
    )

    @Option(name: .long, help: "The edge's YAML config file (to find buffer.path; default: WEIR_EDGE_BUFFER_PATH or ./weir-edge.db).")
    var config: String?

    @Option(name: .long, help: "The buffer file (instead of --config).")
    var buffer: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() async throws {
        let path = try await BufferPath.resolve(config: config, buffer: buffer)
        do {
            let store = try EdgeBuffer.openReadOnly(path: path)
            var status = try store.status()
            // The running edge knows best: a stall shows even when the file cannot be written.
            if let config, let listen = try? EdgeConfiguration.load(file: config).metrics.listen,
               let live = await EdgeHealth.fetch(listen: listen) {
                status.ingestState = live.status
                status.ingestStalledSince = live.since
                status.ingestReason = live.reason
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(status), as: UTF8.self))
            } else {
                print(status.text)
            }
        } catch {
            throw ExitFailure("weir-edge status: \(error)")
        }
    }
}

/// Finds the buffer file from `--buffer` or the config's `buffer.path`.
enum BufferPath {
    static func resolve(config: String?, buffer: String?) async throws -> String {
        if let buffer { return buffer }
        if config == nil {
            // No config given: the environment's buffer path, or the default one.
            return ProcessInfo.processInfo.environment["WEIR_EDGE_BUFFER_PATH"] ?? EdgeConfiguration(gateway: "-").buffer.path
        }
        do {
            return try EdgeConfiguration.load(file: config).buffer.path
        } catch {
            throw ExitFailure("weir-edge: \(error)")
        }
    }
}
