import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore
import WeirSupport
import WeirWire

/// Who may read which device, which gateway may write which device, token rotation and
/// the per-gateway rate limit, through the router.
@Suite struct AccessTests {
    static let plantReader = "plant-a-reader-token"

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    /// gw-1 writes plant-a-*, plant-b-* and d1; the plant-a reader sees plant-a-* only.
    static func harness(_ configure: (inout CloudConfiguration) -> Void = { _ in }) throws -> CloudHarness {
        try CloudHarness {
            $0.readers["plant-a"] = ReaderAccess(tokenHashes: [SHA256.hex(plantReader)], devices: ["plant-a-*"])
            configure(&$0)
        }
    }

    static let batch = Batch(gateway: "gw-1", id: "plants", readings:
        readings("plant-a-1", [(t0 + 1_000, 1)]) + readings("plant-b-1", [(t0 + 1_000, 2)]))

    @Test("the read matrix: no token 401, wrong token 401, gateway token 401, outside the globs 404 like an unknown device, inside 200")
    func readMatrix() async throws {
        let harness = try Self.harness()
        defer { harness.removeFiles() }
        try await harness.withClient { client async throws in
            #expect(try await client.post(Self.batch).0 == .ok)
            let windows = "/v1/devices/%@/windows?metric=temp"
            func get(_ device: String, _ headers: HTTPFields) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(uri: String(format: windows, device), method: .get, headers: headers) { ($0.status, String(buffer: $0.body)) }
            }
            #expect(try await get("plant-a-1", [:]).0 == .unauthorized)
            #expect(try await get("plant-a-1", Self.bearer("no-such-token")).0 == .unauthorized)
            #expect(try await get("plant-a-1", Self.bearer(CloudHarness.token)).0 == .unauthorized, "a gateway token is not a reader token")
            #expect(try await client.execute(uri: "/v1/devices", method: .get) { $0.status } == .unauthorized)

            let inside = try await get("plant-a-1", Self.bearer(Self.plantReader))
            #expect(inside.0 == .ok, "\(inside.1)")
            let outside = try await get("plant-b-1", Self.bearer(Self.plantReader))
            let unknown = try await get("plant-a-9", Self.bearer(Self.plantReader))
            #expect(outside.0 == .notFound)
            #expect(unknown.0 == .notFound)
            // Existence does not leak: the answers differ only in the device's name.
            #expect(outside.1.replacingOccurrences(of: "plant-b-1", with: "X") == unknown.1.replacingOccurrences(of: "plant-a-9", with: "X"))
            // A bad query about a hidden device answers like one about an unknown device.
            let hiddenBad = try await client.execute(uri: "/v1/devices/plant-b-1/windows", method: .get, headers: Self.bearer(Self.plantReader)) { $0.status }
            let unknownBad = try await client.execute(uri: "/v1/devices/plant-a-9/windows", method: .get, headers: Self.bearer(Self.plantReader)) { $0.status }
            #expect(hiddenBad == unknownBad)

            let listed = try await client.execute(uri: "/v1/devices", method: .get, headers: Self.bearer(Self.plantReader)) {
                try JSONDecoder().decode([DeviceSummary].self, from: Data($0.body.readableBytesView)).map(\.device)
            }
            #expect(listed == ["plant-a-1"])
            #expect(try await client.devices().map(\.device) == ["plant-a-1", "plant-b-1"], "the * reader sees both")

            // /healthz stays open; /metrics answers a loopback (here: in-process) client.
            #expect(try await client.execute(uri: "/healthz", method: .get) { $0.status } == .ok)
            #expect(try await client.execute(uri: "/metrics", method: .get) { $0.status } == .ok)
        }
    }

    @Test("a gateway token that is also listed as a reader reads")
    func gatewayListedAsReader() async throws {
        let harness = try Self.harness { $0.readers["gw-1-as-reader"] = ReaderAccess(tokenHashes: [SHA256.hex(CloudHarness.token)]) }
        defer { harness.removeFiles() }
        try await harness.withClient { client async throws in
            #expect(try await client.post(Self.batch).0 == .ok)
            #expect(try await client.execute(uri: "/v1/devices", method: .get, headers: Self.bearer(CloudHarness.token)) { $0.status } == .ok)
        }
    }

    @Test("--insecure-no-auth keeps the read API open")
    func insecureModeReadsOpen() async throws {
        let harness = try CloudHarness { $0.insecureNoAuth = true; $0.readers = [:] }
        defer { harness.removeFiles() }
        try await harness.withClient { client async throws in
            #expect(try await client.post(Self.batch).0 == .ok)
            #expect(try await client.execute(uri: "/v1/devices/plant-b-1/windows?metric=temp", method: .get) { $0.status } == .ok)
        }
    }

    @Test("/metrics with metrics_token_sha256 needs that token")
    func metricsToken() async throws {
        let harness = try CloudHarness { $0.metricsTokenHash = SHA256.hex("scrape-me") }
        defer { harness.removeFiles() }
        try await harness.withClient { client async throws in
            #expect(try await client.execute(uri: "/metrics", method: .get) { $0.status } == .unauthorized)
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: Self.bearer("nope")) { $0.status } == .unauthorized)
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: Self.bearer("scrape-me")) { $0.status } == .ok)
        }
    }

    @Test("a gateway bound to devices: a mixed batch applies only its devices, counts the rest forbidden, keeps them in rejected; a resend changes nothing")
    func deviceBinding() async throws {
        let harness = try CloudHarness {
            $0.gateways["gw-1"]?.devices = ["plant-a-*"]
        }
        defer { harness.removeFiles() }
        let mixed = Batch(
            gateway: "gw-1", id: "mixed",
            readings: readings("plant-a-1", [(t0 + 1_000, 1), (t0 + 2_000, 2)])
                + readings("plant-b-1", [(t0 + 1_000, 10)])
                + readings("plant-a-2", [(t0 + 1_000, 3)])
                + readings("other", [(t0 + 3_000, 20), (t0 + 4_000, 30)]),
            drops: [DropRecord(device: "plant-a-1", metric: "temp", from: t0, to: t0 + 500, count: 4),
                    DropRecord(device: "plant-b-1", metric: "temp", from: t0, to: t0 + 500, count: 7)])
        try await harness.withClient { client async throws in
            let (status, answer) = try await client.post(mixed)
            #expect(status == .ok)
            #expect(answer?.accepted == 3)
            #expect(answer?.forbidden == 4, "3 readings and 1 drop-ledger row")
            #expect(answer?.rejected.map(\.index) == [2, 4, 5])
            #expect(answer?.rejected.allSatisfy { $0.reason.contains("forbidden") } == true)

            let again = try await client.post(mixed)
            #expect(again.0 == .ok)
            #expect(again.1?.accepted == 0)
            #expect(again.1?.duplicates == 3)
            #expect(again.1?.forbidden == 4)

            let devices = try await client.devices()
            #expect(devices.map(\.device) == ["plant-a-1", "plant-a-2"], "no forbidden device exists in the cloud")
            #expect(devices.first { $0.device == "plant-a-1" }?.droppedAtEdge == 4)
            #expect(try await client.windows("plant-a-1").first?.count == 2)

            try await client.execute(uri: "/metrics", method: .get) { response in
                let line = String(buffer: response.body).split(separator: "\n").first { $0.hasPrefix("weir_cloud_forbidden_total ") }
                #expect((line?.split(separator: " ").last).flatMap { Double($0) } ?? 0 >= 8, "\(line ?? "no weir_cloud_forbidden_total")")
            }
        }
        let store = try harness.openStore()
        let kept = try await store.rawCount(sql: "SELECT COUNT(*) FROM rejected WHERE batch = 'mixed' AND reason LIKE 'forbidden%'")
        let keptDrops = try await store.rawCount(sql: "SELECT COUNT(*) FROM rejected WHERE batch = 'mixed' AND idx < 0")
        try await store.close()
        #expect(kept == 3, "each forbidden reading once, even after the resend")
        #expect(keptDrops == 1)
    }

    @Test("token_sha256 as a list: the old and the new token both work during a rotation")
    func tokenRotation() async throws {
        let harness = try CloudHarness {
            $0.gateways["gw-1"] = GatewayAccess(tokenHashes: [SHA256.hex("old-token"), SHA256.hex("new-token")])
        }
        defer { harness.removeFiles() }
        try await harness.withClient { client async throws in
            #expect(try await client.post(Batch(gateway: "gw-1", id: "a", readings: readings("d1", [(t0, 1)])), token: "old-token").0 == .ok)
            #expect(try await client.post(Batch(gateway: "gw-1", id: "b", readings: readings("d1", [(t0 + 1, 1)])), token: "new-token").0 == .ok)
            #expect(try await client.post(Batch(gateway: "gw-1", id: "c", readings: readings("d1", [(t0 + 2, 1)])), token: CloudHarness.token).0 == .unauthorized)
        }
    }

    @Test("over max_readings_per_second: 429 with Retry-After, nothing applied; another gateway is not limited")
    func rateLimit() async throws {
        let harness = try CloudHarness { $0.gateways["gw-1"]?.maxReadingsPerSecond = 100 }
        defer { harness.removeFiles() }
        try await harness.withClient { client async throws in
            @Sendable func batch(_ gateway: String, _ id: String, _ device: String, _ n: Int) -> Batch {
                Batch(gateway: gateway, id: id, readings: readings(device, (0..<n).map { (t0 + Int64($0) * 10, Double($0)) }))
            }
            // A full bucket admits one batch (even a large one), which leaves it in debt.
            #expect(try await client.post(batch("gw-1", "first", "d1", 300)).0 == .ok)
            let refused = try await client.execute(uri: "/v1/batches", method: .post, headers: [.contentType: "application/json", .authorization: "Bearer \(CloudHarness.token)"],
                                                   body: ByteBuffer(bytes: batch("gw-1", "second", "d2", 50).jsonBytes())) { ($0.status, $0.headers[.retryAfter]) }
            #expect(refused.0 == .tooManyRequests)
            let wait = try #require(refused.1.flatMap { Int($0) })
            #expect(wait >= 2 && wait <= 4, "300 readings at 100/s leave ~3 s of debt: Retry-After \(wait)")
            #expect(try await client.post(batch("gw-2", "other", "d3", 1_000), token: CloudHarness.otherToken).0 == .ok)
            #expect(try await client.devices().map(\.device) == ["d1", "d3"], "the refused batch was not applied")
        }
    }
}

@Suite struct SecurityConfigTests {
    @Test("TLS files: a missing certificate, an unreadable or bad key, a bad CA file each name their key")
    func tlsFilesAreChecked() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("weir-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "not a certificate".write(toFile: "\(dir)/junk.pem", atomically: true, encoding: .utf8)
        func problem(_ files: CloudTLSConfiguration) -> String {
            do {
                _ = try CloudTLSCredentials(files: files)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(problem(.init(certFile: "\(dir)/missing.pem", keyFile: "\(dir)/junk.pem")).contains("tls.cert_file"))
        #expect(problem(.init(certFile: "\(dir)/junk.pem", keyFile: "\(dir)/junk.pem")).contains("tls.cert_file"))
        #expect(problem(.init(certFile: "\(dir)/missing.pem", keyFile: "\(dir)/junk.pem")).contains("does not exist"))
    }
}
