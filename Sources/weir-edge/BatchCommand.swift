import ArgumentParser

/// `weir-edge batch encode|decode|stats`: the binary batch codec from the command line.
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Encode JSON lines into the binary batch codec, decode it back, or measure a batch."
    )
}
