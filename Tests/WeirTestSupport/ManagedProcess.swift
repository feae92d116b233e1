import Foundation
import Synchronization

/// A child process started by a test: output captured to files, readiness by waiting for
/// a line, and stopping by PID with SIGTERM (then SIGKILL). `deinit` kills a process that
/// is still running, so a failed test does not leave it behind.
///
/// ```swift
/// let cloud = try ManagedProcess.start(executable: "/path/weir-cloud", arguments: ["serve", ...], logDirectory: dir.path)
/// let line = try await cloud.waitForOutput(containing: "listening on", timeout: .seconds(10))
/// let status = await cloud.terminate()   // SIGTERM; SIGKILL after the grace period
/// ```
public final class ManagedProcess: Sendable {
    /// A short name for logs and errors.
    public let name: String
    public let pid: Int32
    /// Where stdout and stderr go.
    public let stdoutPath: String
    public let stderrPath: String
    private let process: LockedProcess

    /// Starts `executable` with `arguments` and `environment` added to the current one.
    public static func start(
        name: String? = nil,
        executable: String,
        arguments: [String],
        environment: [String: String] = [:],
        workingDirectory: String? = nil,
        logDirectory: String
    ) throws -> ManagedProcess {
        let label = name ?? URL(fileURLWithPath: executable).lastPathComponent
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw TestSupportError("\(executable) is not an executable file (build it first: swift build)")
        }
        let unique = "\(label)-\(UInt32.random(in: 0...UInt32.max))"
        let out = "\(logDirectory)/\(unique).stdout"
        let err = "\(logDirectory)/\(unique).stderr"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        guard let outHandle = FileHandle(forWritingAtPath: out), let errHandle = FileHandle(forWritingAtPath: err) else {
            throw TestSupportError("cannot open log files in \(logDirectory)")
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? outHandle.close()
        try? errHandle.close()
        return ManagedProcess(name: label, pid: process.processIdentifier, stdoutPath: out, stderrPath: err,
                              process: LockedProcess(process))
    }

    private init(name: String, pid: Int32, stdoutPath: String, stderrPath: String, process: LockedProcess) {
        self.name = name
        self.pid = pid
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
        self.process = process
    }

    deinit {
        if isRunning { kill(pid, SIGKILL) }
    }

    /// Whether the process is still running.
    public var isRunning: Bool { process.isRunning }

    /// How it ended, once it has.
    public var exitStatus: ExitStatus? { process.exitStatus }

    /// Everything written to stdout so far.
    public var standardOutput: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    /// Everything written to stderr so far.
    public var standardError: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The last lines of stdout and stderr, for failure messages.
    public func outputTail(lines: Int = 30) -> String {
        let out = standardOutput.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        let err = standardError.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        return "--- \(name) stdout ---\n\(out)\n--- \(name) stderr ---\n\(err)"
    }

    /// Waits until stdout or stderr contains `text` and returns that line. Throws if the
    /// process exits first or `timeout` passes.
    @discardableResult
    public func waitForOutput(containing text: String, timeout: Duration = .seconds(15)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            for stream in [standardOutput, standardError] {
                if let line = stream.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            }
            if !isRunning {
                throw TestSupportError("\(name) exited (\(exitStatus.map { "\($0)" } ?? "?")) before printing '\(text)'\n\(outputTail())")
            }
            if ContinuousClock.now > deadline {
                throw TestSupportError("\(name) did not print '\(text)' within \(timeout)\n\(outputTail())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Sends `signal` to the process (by PID).
    public func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits for the process to exit; `nil` if it is still running after `timeout`.
    @discardableResult
    public func waitForExit(timeout: Duration) async -> ExitStatus? {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return exitStatus
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns how it ended.
    @discardableResult
    public func terminate(grace: Duration = .seconds(10)) async -> ExitStatus? {
        guard isRunning else { return exitStatus }
        kill(pid, SIGTERM)
        if let status = await waitForExit(timeout: grace) { return status }
        return await killNow()
    }

    /// SIGKILL now, and wait for the exit.
    @discardableResult
    public func killNow() async -> ExitStatus? {
        guard isRunning else { return exitStatus }
        kill(pid, SIGKILL)
        return await waitForExit(timeout: .seconds(10))
    }

    /// How a process ended.
    public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)
        public var description: String {
            switch self {
            case .exited(let code): return "exit code \(code)"
            case .signalled(let signal): return "signal \(signal)"
            }
        }
    }
}

/// Foundation's `Process` is not Sendable; every access goes through this lock.
private final class LockedProcess: Sendable {
    private let process: Mutex<UncheckedBox>
    private struct UncheckedBox: @unchecked Sendable { let process: Process }

    init(_ process: Process) { self.process = Mutex(UncheckedBox(process: process)) }

    var isRunning: Bool { process.withLock { $0.process.isRunning } }

    var exitStatus: ManagedProcess.ExitStatus? {
        process.withLock { box in
            let p = box.process
            if p.isRunning { return nil }
            switch p.terminationReason {
            case .exit: return .exited(p.terminationStatus)
            case .uncaughtSignal: return .signalled(p.terminationStatus)
            @unknown default: return .exited(p.terminationStatus)
            }
        }
    }
}
