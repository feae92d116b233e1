import Foundation

/// A real `weir-edge run` process (`.build/debug/weir-edge`) for tests: started from a
/// config file, ready once it prints `weir-edge running`, stopped by SIGTERM or killed
/// by SIGKILL (to test what survives a crash).
public final class EdgeProcess: Sendable {
    public let configPath: String
    public let directory: String
    public let process: ManagedProcess

    /// Starts `weir-edge run --config configPath` and waits until it is subscribed.
    public static func start(config configPath: String, in directory: String,
                             environment: [String: String] = [:], waitUntilRunning: Bool = true) async throws -> EdgeProcess {
        let process = try ManagedProcess.start(
            name: "weir-edge", executable: PackagePaths.program("weir-edge"),
            arguments: ["run", "--config", configPath], environment: environment, logDirectory: directory)
        if waitUntilRunning {
            do {
                try await process.waitForOutput(containing: "weir-edge running", timeout: .seconds(30))
            } catch {
                await process.killNow()
                throw error
            }
        }
        return EdgeProcess(configPath: configPath, directory: directory, process: process)
    }

    private init(configPath: String, directory: String, process: ManagedProcess) {
        self.configPath = configPath
        self.directory = directory
        self.process = process
    }

    /// SIGTERM: the edge seals what it holds in memory, commits and exits.
    @discardableResult
    public func stop(grace: Duration = .seconds(15)) async -> ManagedProcess.ExitStatus? {
        await process.terminate(grace: grace)
    }

    /// SIGKILL: a crash, nothing gets to run.
    public func kill() async { await process.killNow() }

    /// Runs `weir-edge <arguments>` to completion and returns its stdout (for `status`,
    /// `dead-letters`); throws with stderr when it exits non-zero.
    public static func runCommand(_ arguments: [String], in directory: String,
                                  environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = try ManagedProcess.start(
            name: "weir-edge-cmd", executable: PackagePaths.program("weir-edge"),
            arguments: arguments, environment: environment, logDirectory: directory)
        let exit = await process.waitForExit(timeout: .seconds(30))
        if exit == nil { await process.killNow() }
        let code: Int32
        switch exit {
        case .exited(let c)?: code = c
        case .signalled(let s)?: code = 128 + s
        case nil: code = -1
        }
        return (code, process.standardOutput, process.standardError)
    }
}
