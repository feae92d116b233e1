import ArgumentParser
import Foundation
import WeirCloud
import WeirCore

/// `weir-cloud`: the ingester. Parses arguments and hands over to `CloudApplication`.
@main
struct WeirCloudCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weir-cloud",
        abstract: "Accepts batches from Weir gateways, deduplicates them and reconciles them into per-device windows.",
        subcommands: [Serve.self]
    )
}

extension WeirCloudCommand {
    /// `weir-cloud serve --config FILE [--listen HOST:PORT] [--store URL] [--insecure-no-auth]`
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the ingest and query API until SIGTERM.",
            discussion: """
                Every config key can be overridden by an environment variable WEIR_CLOUD_<KEY>, \
                e.g. WEIR_CLOUD_LISTEN, WEIR_CLOUD_WINDOWS=10s,60s. Flags override both. \
                Once listening, prints one line: weir-cloud listening on HOST:PORT.
                """
        )

        @Option(name: .long, help: "YAML config file (see cloud/weir-cloud.yaml).")
        var config: String?

        @Option(name: .long, help: "HOST:PORT to listen on; port 0 picks a free port.")
        var listen: String?

        @Option(name: .long, help: "Store URL, e.g. sqlite:./weir-cloud.db.")
        var store: String?

        @Flag(name: .long, help: "Accept batches without a token (development only).")
        var insecureNoAuth = false

        func run() async throws {
            do {
                try await CloudApplication.serve(configFile: config, listen: listen, store: store, insecureNoAuth: insecureNoAuth)
            } catch let error as WeirError {
                FileHandle.standardError.write(Data("weir-cloud: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}
