import ArgumentParser

/// `weir-edge`: the gateway. Subcommands start the service or inspect its buffer.
@main
struct WeirEdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weir-edge",
        abstract: "Weir's gateway: MQTT in, SQLite store-and-forward, uplink to weir-cloud.",
        subcommands: [RunCommand.self, StatusCommand.self, DeadLettersCommand.self, BatchCommand.self]
    )
}
