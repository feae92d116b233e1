import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport

/// weir-edge → weir-cloud over HTTPS as an operator sets it up: a throwaway CA made with
/// `openssl`, the cloud's `tls:` block, the edge's `uplink.ca_file` (and, for mutual TLS,
/// its client certificate). Certificate problems keep every chunk, say which key to fix,
/// and drain once fixed.
@Suite("weir-edge to weir-cloud over HTTPS", .serialized)
struct EdgeHTTPSEndToEndTests {
    static let token = "gw-1-https-token"
    static let env = ["WEIR_EDGE_UPLINK_TOKEN": token]

    func https(_ h: EdgeHarness, _ keys: [String: String]) throws {
        try h.writeConfig(uplink: "https://127.0.0.1:\(h.cloudPort)", uplinkKeys: keys)
    }

    @Test("with the right CA the edge forwards over HTTPS and the windows are exact")
    func rightCA() async throws {
        try await withEdgeHarness { h in
            let certs = try await TestCertificates.make(in: h.dir.path)
            try await h.startCloud(tokens: ["gw-1": Self.token], tls: certs)
            try https(h, ["ca_file": certs.caFile])
            try await h.startEdge(environment: Self.env)
            let pub = try await h.publisher()
            let n = 400
            try await h.publish(0..<n, with: pub)
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4)
            #expect(seen == Int64(n))
            #expect(try await h.windowMismatches(0..<n, devices: 4) == [])
            #expect(try h.status().uplinkState == "ok")
            await pub.disconnect()
        }
    }

    enum Fault: String, CaseIterable, Sendable, CustomStringConvertible {
        case unknownCA = "a CA the edge does not trust"
        case expired = "an expired certificate"
        case wrongHost = "a certificate for another host"
        var description: String { rawValue }
    }

    @Test("a certificate problem keeps every chunk, names the key to fix in status; fixed, the backlog drains", arguments: Fault.allCases)
    func certificateProblem(_ fault: Fault) async throws {
        try await withEdgeHarness { h in
            let certs = try await TestCertificates.make(in: h.dir.path)
            var served = certs
            var trusted = certs.caFile
            switch fault {
            case .unknownCA:
                trusted = try await TestCertificates.make(in: h.dir.path, name: "stranger").caFile
            case .expired:
                let expired = try await certs.issue("expired", commonName: "localhost", alternativeNames: ["IP:127.0.0.1", "DNS:localhost"], days: -1)
                served = certs.serving(expired)
            case .wrongHost:
                let other = try await certs.issue("elsewhere", commonName: "cloud.example.com", alternativeNames: ["DNS:cloud.example.com"])
                served = certs.serving(other)
            }
            try await h.startCloud(tokens: ["gw-1": Self.token], tls: served)
            try https(h, ["ca_file": trusted])
            try await h.startEdge(environment: Self.env)
            let pub = try await h.publisher()
            let n = 300
            try await h.publish(0..<n, with: pub)
            let stuck = try await h.waitForStatus { $0.readings >= Int64(n) && $0.uplinkState == "uplink certificate problem" }
            #expect(stuck.uplinkState == "uplink certificate problem", "\(stuck.lastUplinkError ?? "no error")")
            #expect(stuck.readings == Int64(n), "nothing may be lost")
            #expect(stuck.rejectedChunks == 0, "a certificate problem says nothing about the batch")
            let error = stuck.lastUplinkError ?? ""
            print("status for \(fault): \(error)")
            switch fault {
            case .unknownCA: #expect(error.contains("uplink.ca_file") && error.contains("does not hold"), "\(error)")
            case .expired: #expect(error.contains("expired on") && error.contains("tls.cert_file"), "\(error)")
            case .wrongHost: #expect(error.contains("host '127.0.0.1'") && error.contains("uplink.url"), "\(error)")
            }
            #expect(h.edge?.process.standardError.contains("uplink certificate problem") == true, "logged at once")
            try await Task.sleep(for: .seconds(1))
            #expect(try h.status().readings == Int64(n))

            // Fixed: the cloud serves the right certificate and the edge trusts its CA.
            #expect(await h.edge?.stop() == .exited(0))
            await h.cloud?.stop()
            try await h.startCloud(tokens: ["gw-1": Self.token], tls: certs)
            try https(h, ["ca_file": certs.caFile])
            try await h.startEdge(environment: Self.env)
            let seen = try await h.waitForCloudCount(Int64(n), devices: 4)
            #expect(seen == Int64(n))
            #expect(try await h.windowMismatches(0..<n, devices: 4) == [])
            await pub.disconnect()
        }
    }

    @Test("mutual TLS: no client certificate is refused at the handshake, gw-1's certificate with gw-2's token is 403, the edge with its certificate drains")
    func mutualTLS() async throws {
        try await withEdgeHarness { h in
            let certs = try await TestCertificates.make(in: h.dir.path)
            let gw1 = try await certs.issue("gw-1-client", commonName: "gw-1", usage: .client)
            let gw2 = try await certs.issue("gw-2-client", commonName: "gw-2-other", alternativeNames: ["DNS:gw-2"], usage: .client)
            // Under mutual TLS every client needs a certificate, the test's reads too.
            let reader = try await certs.issue("reader-client", commonName: "test-reader", usage: .client)
            try await h.startCloud(tokens: ["gw-1": Self.token, "gw-2": "gw-2-token"], tls: certs, clientCAFile: certs.caFile,
                                   readerCertificate: reader)
            let cloud = try #require(h.cloud)
            func post(_ gateway: String, token: String, tls: HTTPGet.TLS) async throws -> Int {
                let batch = Batch(gateway: gateway, id: "\(gateway)-\(UUID().uuidString)",
                                  readings: [Reading(device: "m-\(gateway)", metric: "temp", ts: h.baseTs, value: 1)])
                return try await CloudAPI.post(batch, to: cloud.url, token: token, tls: tls).status
            }
            await #expect(throws: (any Error).self, "no client certificate: the handshake fails") {
                _ = try await post("gw-1", token: Self.token, tls: HTTPGet.TLS(caFile: certs.caFile))
            }
            let withGw1 = HTTPGet.TLS(caFile: certs.caFile, clientCertFile: gw1.certFile, clientKeyFile: gw1.keyFile)
            let withGw2 = HTTPGet.TLS(caFile: certs.caFile, clientCertFile: gw2.certFile, clientKeyFile: gw2.keyFile)
            #expect(try await post("gw-2", token: "gw-2-token", tls: withGw1) == 403, "gw-1's certificate with gw-2's token")
            #expect(try await post("gw-2", token: "gw-2-token", tls: withGw2) == 200, "a SAN naming gw-2 is enough")
            #expect(try await post("gw-1", token: Self.token, tls: withGw1) == 200)

            // The edge without its certificate is stuck and says so; with it, it drains.
            try https(h, ["ca_file": certs.caFile])
            try await h.startEdge(environment: Self.env)
            let pub = try await h.publisher()
            let n = 200
            try await h.publish(0..<n, with: pub)
            let stuck = try await h.waitForStatus { $0.readings >= Int64(n) && $0.uplinkState == "uplink certificate problem" }
            #expect(stuck.uplinkState == "uplink certificate problem", "\(stuck.lastUplinkError ?? "no error")")
            #expect(stuck.lastUplinkError?.contains("uplink.client_cert_file") == true, "\(stuck.lastUplinkError ?? "")")
            #expect(stuck.readings == Int64(n))
            #expect(await h.edge?.stop() == .exited(0))
            try https(h, ["ca_file": certs.caFile, "client_cert_file": gw1.certFile, "client_key_file": gw1.keyFile])
            try await h.startEdge(environment: Self.env)
            #expect(try await h.waitForCloudCount(Int64(n), devices: 4) == Int64(n))
            #expect(try await h.windowMismatches(0..<n, devices: 4) == [])
            await pub.disconnect()
        }
    }

    @Test("SIGHUP reloads the cloud's certificate: a broken file keeps the old one, a new one is served to new connections, the edge keeps forwarding")
    func reloadOnSIGHUP() async throws {
        try await withEdgeHarness { h in
            let certs = try await TestCertificates.make(in: h.dir.path)
            // The cloud serves copies, so the test can replace them in place.
            let live = certs.serving(IssuedCertificate(certFile: h.dir.file("live.pem"), keyFile: h.dir.file("live.key")))
            try FileManager.default.copyItem(atPath: certs.serverCertFile, toPath: live.serverCertFile)
            try FileManager.default.copyItem(atPath: certs.serverKeyFile, toPath: live.serverKeyFile)
            try await h.startCloud(tokens: ["gw-1": Self.token], tls: live)
            let first = try await TestCertificates.serial(ofPEMFile: certs.serverCertFile)
            #expect(try await TestCertificates.servedSerial(port: h.cloudPort) == first)

            try https(h, ["ca_file": certs.caFile])
            try await h.startEdge(environment: Self.env)
            let pub = try await h.publisher()
            try await h.publish(0..<200, with: pub)
            #expect(try await h.waitForCloudCount(200, devices: 4) == 200)

            // A broken certificate file: the reload fails, the old certificate stays served.
            let cloud = try #require(h.cloud)
            try "not a certificate\n".write(toFile: live.serverCertFile, atomically: true, encoding: .utf8)
            cloud.process.send(SIGHUP)
            try await cloud.process.waitForOutput(containing: "TLS reload failed", timeout: .seconds(10))
            #expect(try await TestCertificates.servedSerial(port: h.cloudPort) == first)

            let next = try await certs.issue("next", commonName: "localhost", alternativeNames: ["IP:127.0.0.1", "DNS:localhost"])
            let second = try await next.serial()
            #expect(second != first)
            try FileManager.default.removeItem(atPath: live.serverCertFile)
            try FileManager.default.removeItem(atPath: live.serverKeyFile)
            try FileManager.default.copyItem(atPath: next.certFile, toPath: live.serverCertFile)
            try FileManager.default.copyItem(atPath: next.keyFile, toPath: live.serverKeyFile)
            cloud.process.send(SIGHUP)
            try await cloud.process.waitForOutput(containing: "reloaded the TLS certificate", timeout: .seconds(10))
            #expect(try await TestCertificates.servedSerial(port: h.cloudPort) == second)

            try await h.publish(200..<400, with: pub)
            #expect(try await h.waitForCloudCount(400, devices: 4) == 400)
            #expect(try await h.windowMismatches(0..<400, devices: 4) == [])
            #expect(cloud.process.isRunning)
            await pub.disconnect()
        }
    }
}
