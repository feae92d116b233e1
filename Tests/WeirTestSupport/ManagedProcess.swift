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
    ///
    /// Spawned with `posix_spawn` and an empty signal mask: a child started from a Swift
    /// concurrency or Dispatch thread would otherwise inherit that thread's blocked
    /// signals, and a program with plain signal handlers (mosquitto) would never see the
    /// SIGTERM meant to stop it.
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
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var program = executable
        var args = arguments
        if let workingDirectory {
            // posix_spawn has no portable chdir: let a shell change directory, then exec.
            program = "/bin/sh"
            args = ["-c", "cd \"$0\" && exec \"$@\"", workingDirectory, executable] + arguments
        }
        let pid = try spawn(executable: program, arguments: args, environment: env, stdout: out, stderr: err)
        return ManagedProcess(name: label, pid: pid, stdoutPath: out, stderrPath: err, process: LockedProcess(pid))
    }

    /// Runs `executable` to completion on the calling thread (blocking `waitpid`, for
    /// short commands such as `psql` and `scripts/pg-private`; Foundation's
    /// `Process.waitUntilExit` was seen to hang when tests start processes in parallel).
    /// Returns the exit code (128 + signal when killed), stdout and stderr.
    public static func run(executable: String, arguments: [String], environment: [String: String] = [:])
        throws -> (status: Int32, stdout: String, stderr: String) {
        let unique = "\(FileManager.default.temporaryDirectory.path)/weir-run-\(UInt64.random(in: 0...UInt64.max))"
        defer {
            try? FileManager.default.removeItem(atPath: unique + ".stdout")
            try? FileManager.default.removeItem(atPath: unique + ".stderr")
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let pid = try spawn(executable: executable, arguments: arguments, environment: env,
                            stdout: unique + ".stdout", stderr: unique + ".stderr")
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw TestSupportError("waitpid \(executable): \(String(cString: strerror(errno)))") }
        }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let out = (try? String(contentsOfFile: unique + ".stdout", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: unique + ".stderr", encoding: .utf8)) ?? ""
        return (code, out, err)
    }

    private static func spawn(executable: String, arguments: [String], environment: [String: String],
                              stdout: String, stderr: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw TestSupportError("posix_spawn \(executable) failed: \(String(cString: strerror(rc)))") }
        return pid
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

/// The child's state, from `waitpid` (it reaps the child once it has exited).
private final class LockedProcess: Sendable {
    private let pid: Int32
    private let status = Mutex<ManagedProcess.ExitStatus?>(nil)

    init(_ pid: Int32) { self.pid = pid }

    private func poll() -> ManagedProcess.ExitStatus? {
        status.withLock { known in
            if let known { return known }
            var raw: Int32 = 0
            let rc = waitpid(pid, &raw, WNOHANG)
            guard rc == pid else { return nil }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import as macros.
            let signal = raw & 0x7F
            known = signal == 0 ? .exited((raw >> 8) & 0xFF) : .signalled(signal)
            return known
        }
    }

    var isRunning: Bool { poll() == nil }

    var exitStatus: ManagedProcess.ExitStatus? { poll() }
}
