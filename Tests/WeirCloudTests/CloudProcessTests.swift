import Foundation
import Testing
@testable import WeirCloud
import WeirCore
import WeirSupport
import WeirTestSupport
import WeirWire

/// The real `weir-cloud serve` process: SIGTERM stops it cleanly, SIGKILL loses nothing
/// that was answered 200, and both restart on the same store with the same windows.
@Suite(.serialized) struct CloudProcessTests {
    static let token = "process-test-token"

    func windowCounts(_ cloud: CloudProcess) async throws -> [Int64] {
        try await HTTPGet.json(WindowsAnswer.self, "\(cloud.url)/v1/devices/d1/windows?metric=temp&size=10s").windows.map(\.count)
    }

    @Test(arguments: [SIGTERM, SIGKILL])
    func stoppedProcessRestartsWithEverythingAnswered(_ signal: Int32) async throws {
        let dir = try TemporaryDirectory(prefix: "weir-cloud-process")
        defer { dir.remove() }
        let tokens = ["gw-1": Self.token]
        let cloud = try await CloudProcess.start(in: dir.path, tokens: tokens, windows: ["10s", "60s"])
        var expected: [Int64] = []
        do {
            for b in 0..<5 {
                let rs = readings("d1", (0..<20).map { (t0 + Int64(b * 20 + $0) * 1_000, Double($0)) })
                try await CloudAPI.postAccepted(Batch(gateway: "gw-1", id: "p\(b)", readings: rs), to: cloud.url, token: Self.token)
            }
            expected = try await windowCounts(cloud)
            #expect(expected == Array(repeating: 10, count: 10))
            cloud.process.send(signal)
            let status = await cloud.process.waitForExit(timeout: .seconds(15))
            if signal == SIGTERM {
                #expect(status == .exited(0), "weir-cloud output: \(cloud.process.outputTail())")
            }
        } catch {
            await cloud.kill()
            throw error
        }

        let again = try await CloudProcess.start(in: dir.path, port: cloud.port, tokens: tokens, windows: ["10s", "60s"])
        do {
            #expect(try await windowCounts(again) == expected)
            let devices = try await HTTPGet.json([DeviceSummary].self, "\(again.url)/v1/devices")
            #expect(devices.first?.readings == 100)
            // A resend after the restart is recognised.
            let rs = readings("d1", (0..<20).map { (t0 + Int64($0) * 1_000, Double($0)) })
            let answer = try await CloudAPI.postAccepted(Batch(gateway: "gw-1", id: "p0", readings: rs), to: again.url, token: Self.token)
            #expect(answer.duplicates == 20)
            await again.stop()
        } catch {
            await again.kill()
            throw error
        }
    }

    @Test("listening on a non-loopback address without TLS warns at start")
    func warnsWithoutTLS() async throws {
        let dir = try TemporaryDirectory(prefix: "weir-cloud-warn")
        defer { dir.remove() }
        let port = try FreePort.allocate()
        let cloud = try await CloudProcess.start(in: dir.path, port: port, tokens: ["gw-1": Self.token],
                                                 environment: ["WEIR_CLOUD_LISTEN": "0.0.0.0:\(port)"])
        let warning = try? await cloud.process.waitForOutput(containing: "without TLS", timeout: .seconds(5))
        await cloud.stop()
        #expect(warning?.contains("tls.cert_file") == true, "\(cloud.process.outputTail())")
    }

    @Test("a TLS file that is missing or not PEM stops weir-cloud before it listens, naming the key", arguments: [
        ("cert_file: /nonexistent/cloud.pem\n  key_file: /etc/hostname", "tls.cert_file", "does not exist"),
        ("cert_file: /etc/hostname\n  key_file: /etc/hostname", "tls.cert_file", "not a PEM certificate"),
    ])
    func badTLSFilesAreNamed(_ tls: String, _ key: String, _ problem: String) async throws {
        let dir = try TemporaryDirectory(prefix: "weir-cloud-badtls")
        defer { dir.remove() }
        let config = dir.file("cloud.yaml")
        try "listen: 127.0.0.1:0\nstore: sqlite:\(dir.file("c.db"))\ngateways:\n  gw-1: {token_sha256: \"\(SHA256.hex("t"))\"}\ntls:\n  \(tls)\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let process = try ManagedProcess.start(name: "weir-cloud", executable: PackagePaths.program("weir-cloud"),
                                               arguments: ["serve", "--config", config], logDirectory: dir.path)
        let status = await process.waitForExit(timeout: .seconds(20))
        #expect(status == .exited(2))
        #expect(process.standardError.contains("config key '\(key)'"), "\(process.standardError)")
        #expect(process.standardError.contains(problem), "\(process.standardError)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("c.db")), "the store is not opened on a bad TLS file")
    }
}
