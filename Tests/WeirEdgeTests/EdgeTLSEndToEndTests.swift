import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirTestSupport
import WeirWire

/// weir-edge behind a TLS broker as a user sets it up: a throwaway CA and a server
/// certificate for 127.0.0.1 made with `openssl`, mosquitto with a TLS-only listener,
/// `mqtt.url: mqtts://...` and `mqtt.ca_file` in the edge's config, `mosquitto_pub
/// --cafile` as the device, a real weir-cloud.
@Suite("weir-edge over TLS end to end", .serialized)
struct EdgeTLSEndToEndTests {
    /// A harness whose broker listens with TLS only; always shut down.
    func withTLSHarness<T>(_ body: (EdgeHarness, TestCertificates) async throws -> T) async throws -> T {
        let dir = try TemporaryDirectory(prefix: "edge-tls")
        let certificates: TestCertificates
        let broker: MosquittoBroker
        do {
            certificates = try await TestCertificates.make(in: dir.path)
            broker = try await MosquittoBroker.startTLS(in: dir.path, certificates: certificates)
        } catch {
            dir.remove()
            throw error
        }
        let harness: EdgeHarness
        do {
            harness = try EdgeHarness(dir: dir, broker: broker, cloudPort: try FreePort.allocate(), edgeConfig: "")
        } catch {
            await broker.stop()
            dir.remove()
            throw error
        }
        do {
            let result = try await body(harness, certificates)
            await harness.shutdown()
            return result
        } catch {
            print(harness.logs())
            await harness.shutdown()
            throw error
        }
    }

    /// The JSON lines device d0 publishes: readings 0..<n, value = index.
    func lines(_ h: EdgeHarness, _ range: Range<Int>) -> [String] {
        range.map { "{\"ts\": \(h.baseTs + Int64($0)), \"temp\": \($0)}" }
    }

    @Test("over TLS (mqtts:// + mqtt.ca_file) every reading published with mosquitto_pub --cafile reaches the cloud's windows exactly")
    func tlsBrokerDeliversExactly() async throws {
        try await withTLSHarness { h, certificates in
            // The broker has no plain listener: what arrives came over TLS.
            try await h.startCloud()
            try await h.startEdge(environment: ["WEIR_EDGE_MQTT_URL": h.broker.tlsURL, "WEIR_EDGE_MQTT_CA_FILE": certificates.caFile])
            let n = 500
            try await h.broker.publishWithMosquittoPub(topic: "devices/d0/telemetry", lines: lines(h, 0..<n), caFile: certificates.caFile)

            let seen = try await h.waitForCloudCount(Int64(n), devices: 1)
            #expect(seen == Int64(n), "cloud holds \(seen) of \(n)\n\(h.logs())")
            let expected = h.expectedWindows(0..<n, devices: 1)
            let windows = try await h.windows(devices: 1, size: "1s")
            #expect(windows["d0"]?.count == expected["d0"]?.count)
            for w in windows["d0"] ?? [] {
                #expect(w.count == expected["d0"]?[w.start]?.count, "window \(w.start)")
                #expect(w.sum == expected["d0"]?[w.start]?.sum, "window \(w.start)")
            }
            let status = try await h.waitForStatus { $0.chunks == 0 }
            #expect(status.counters["accepted_readings"] == Int64(n))
            #expect(status.counters["forwarded_readings"] == Int64(n))
            #expect(h.edge?.process.standardError.contains("TLS handshake") == false)
        }
    }

    @Test("the TLS broker restarts: the edge reconnects over TLS by itself and every reading arrives once")
    func tlsBrokerRestart() async throws {
        try await withTLSHarness { h, certificates in
            try await h.startCloud()
            try await h.startEdge(environment: ["WEIR_EDGE_MQTT_URL": h.broker.tlsURL, "WEIR_EDGE_MQTT_CA_FILE": certificates.caFile])
            try await h.broker.publishWithMosquittoPub(topic: "devices/d0/telemetry", lines: lines(h, 0..<200), caFile: certificates.caFile)
            _ = try await h.waitForStatus { ($0.counters["accepted_readings"] ?? 0) >= 200 }
            await h.broker.stop()
            try await Task.sleep(for: .milliseconds(300))
            h.broker = try await MosquittoBroker.start(in: h.dir.path, port: h.broker.port, extraConfig: certificates.mosquittoListenerConfig)
            try await h.edge?.process.waitForOutput(containing: "MQTT reconnected", timeout: .seconds(45))
            try await h.broker.publishWithMosquittoPub(topic: "devices/d0/telemetry", lines: lines(h, 200..<400), caFile: certificates.caFile)
            let seen = try await h.waitForCloudCount(400, devices: 1)
            #expect(seen == 400, "cloud holds \(seen) of 400\n\(h.logs())")
            let expected = h.expectedWindows(0..<400, devices: 1)
            for w in try await h.windows(devices: 1, size: "1s")["d0"] ?? [] {
                #expect(w.count == expected["d0"]?[w.start]?.count, "window \(w.start)")
                #expect(w.sum == expected["d0"]?[w.start]?.sum, "window \(w.start)")
            }
        }
    }

    @Test("a CA file that did not sign the broker's certificate: the edge says which TLS check failed and accepts nothing")
    func wrongCAIsReportedAndNothingIsAccepted() async throws {
        try await withTLSHarness { h, certificates in
            // Another CA, valid in itself, that never signed the broker's certificate.
            let stranger = try await TestCertificates.make(in: h.dir.path, name: "stranger")
            try await h.startCloud()
            let edge = try await EdgeProcess.start(
                config: h.configPath, in: h.dir.path,
                environment: ["WEIR_EDGE_MQTT_URL": h.broker.tlsURL, "WEIR_EDGE_MQTT_CA_FILE": stranger.caFile],
                waitUntilRunning: false)
            h.edge = edge
            // The user-visible log names TLS, the failed check and the CA file to look at.
            let line = try await edge.process.waitForOutput(containing: "TLS handshake", timeout: .seconds(20))
            #expect(line.contains("certificate verify failed"), "\(line)")
            #expect(line.contains(stranger.caFile), "\(line)")
            #expect(line.contains("error"), "not logged as an error: \(line)")

            // A device keeps publishing (over a trusted connection); the edge takes none of it.
            try await h.broker.publishWithMosquittoPub(topic: "devices/d0/telemetry", lines: lines(h, 0..<100), caFile: certificates.caFile)
            // It keeps trying and keeps saying why (a second attempt, after its backoff).
            func attempts() -> Int {
                edge.process.standardError.split(separator: "\n").filter { $0.contains("cannot connect to the broker: TLS handshake") }.count
            }
            let deadline = ContinuousClock.now + .seconds(20)
            while attempts() < 2 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(attempts() >= 2, "no retry reported:\n\(edge.process.standardError.suffix(2000))")
            #expect(edge.process.isRunning, "the edge should keep running and retrying")
            #expect(!edge.process.standardOutput.contains("weir-edge running"), "the edge claims to be running without a trusted broker")
            let status = try h.status()
            #expect((status.counters["accepted_readings"] ?? 0) == 0, "readings accepted over an untrusted connection: \(status.text)")
            #expect((status.counters["messages"] ?? 0) == 0)
            #expect(status.chunks == 0)
            #expect(try await h.cloudCount(devices: 1) == 0)
        }
    }
}
