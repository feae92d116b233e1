import ArgumentParser
import WeirSim

/// `weir-sim ports N`: prints N TCP ports on 127.0.0.1 that are free right now, one a line
/// (for scripts such as the demo that start servers on free ports).
struct PortsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ports",
        abstract: "Print free loopback TCP ports (for scripts).",
        shouldDisplay: false
    )

    @Argument(help: "How many ports.")
    var count: Int = 1

    func run() throws {
        guard (1...64).contains(count) else { throw ValidationError("count must be 1 to 64") }
        for port in try FreePorts.allocate(count) { print(port) }
    }
}
