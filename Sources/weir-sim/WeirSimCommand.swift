import ArgumentParser
import Foundation
import Logging
import WeirCore

/// `weir-sim`: flaky devices, the ground truth they leave, the verifier that holds the
/// cloud to it, and a proxy that cuts the link on purpose.
@main
struct WeirSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weir-sim",
        abstract: "Weir's simulator: flaky MQTT devices, ground truth, verification, link faults.",
        discussion: """
        weir-sim run      publish readings from simulated devices and record the truth
        weir-sim verify   compare the cloud's windows with the truth
        weir-sim proxy    a TCP proxy that cuts and restores the link on a schedule
        weir-sim watch    follow a run: published, buffered at the edge, stored in the cloud
        """,
        subcommands: [RunCommand.self, VerifyCommand.self, ProxyCommand.self, WatchCommand.self, PortsCommand.self]
    )
}

/// Logging to stderr at `level`; stdout stays for the command's own output.
func bootstrapOutput(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

/// Writes a line to stdout at once (not buffered, so a log file or a pipe sees each line
/// as it happens).
@Sendable func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `HOST:PORT` (IPv6 in brackets).
struct HostPort: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":") else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(argument[argument.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A duration flag (`250ms`, `30s`, `2m`).
struct DurationArgument: ExpressibleByArgument, Sendable {
    var duration: Duration

    init?(argument: String) {
        guard let d = try? DurationText.parse(argument) else { return nil }
        duration = d
    }

    init(_ duration: Duration) { self.duration = duration }
}

/// Turns a `WeirError` into a clean exit: the message on stderr, status 64 for bad
/// arguments (as for every usage error ArgumentParser reports), 1 for anything else.
func exitOnError<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as WeirError {
        FileHandle.standardError.write(Data("weir-sim: \(error)\n".utf8))
        throw ExitCode(error.code == .badArgument ? ExitCode.validationFailure.rawValue : 1)
    }
}
