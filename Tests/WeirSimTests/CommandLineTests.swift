import Foundation
import Testing
import WeirTestSupport
@testable import WeirSim

/// The `weir-sim` program's answers to bad arguments: a message naming the problem, exit
/// status 64 (EX_USAGE), and no stack trace.
@Suite struct CommandLineTests {
    static func run(_ arguments: [String], in dir: TemporaryDirectory) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = try ManagedProcess.start(name: "weir-sim", executable: PackagePaths.program("weir-sim"),
                                               arguments: arguments, logDirectory: dir.path)
        let exit = await process.waitForExit(timeout: .seconds(20))
        guard case .exited(let code)? = exit else {
            await process.killNow()
            throw TestSupportError("weir-sim \(arguments) did not exit: \(process.outputTail())")
        }
        return (code, process.standardOutput, process.standardError)
    }

    @Test(arguments: [
        (["run", "--devices", "0"], "--devices"),
        (["run", "--rate", "1000"], "--rate"),
        (["run", "--metrics", "temp,te mp"], "--metrics"),
        (["run", "--dup", "2"], "--dup"),
        (["run", "--malformed-kinds", "gibberish"], "--malformed-kinds"),
        (["run", "--start", "yesterday"], "--start"),
        (["run", "--broker", "http://x"], "--broker"),
        (["verify", "--truth", "/nonexistent/truth.db"], "does not exist"),
        (["verify", "--size", "soon"], "not a duration"),
        (["verify", "--cloud", "ftp://x"], "--cloud"),
        (["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--schedule", "sideways 5s"], "--schedule"),
        (["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--down-mode", "explode"], "--down-mode"),
        (["proxy", "--listen", "nowhere", "--upstream", "127.0.0.1:1"], "--listen"),
    ])
    func badArgumentsAreNamed(arguments: [String], expected: String) async throws {
        let dir = try TemporaryDirectory(prefix: "sim-cli")
        defer { dir.remove() }
        // verify needs a real truth file to reach the size and URL checks.
        var args = arguments
        if args.first == "verify", !args.contains("--truth") {
            let truth = "\(dir.path)/truth.db"
            _ = try TruthStoreTests.writeTruth(.init(devices: 1, rate: 1, duration: .seconds(1)), to: truth)
            args += ["--truth", truth]
        }
        let result = try await Self.run(args, in: dir)
        #expect(result.status == 64, "\(args): \(result.stderr)")
        #expect(result.stderr.contains(expected), "\(args): \(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test func portsAreDistinctAndFree() async throws {
        let dir = try TemporaryDirectory(prefix: "sim-cli")
        defer { dir.remove() }
        let result = try await Self.run(["ports", "5"], in: dir)
        let ports = result.stdout.split(separator: "\n").compactMap { Int($0) }
        #expect(ports.count == 5)
        #expect(Set(ports).count == 5)
        #expect(ports.allSatisfy { (1024...65535).contains($0) && !FreePort.isAccepting($0) })
    }
}
