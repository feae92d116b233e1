import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
@testable import WeirCloud
import WeirCompression
import WeirCore
import WeirSupport
import WeirTestSupport
import WeirWire

/// The stores a test can run against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    /// A fresh database on this test process's private PostgreSQL server.
    case postgres

    var testDescription: String { rawValue }
}

/// A weir-cloud on a temporary SQLite file (or a fresh PostgreSQL database), driven
/// through HummingbirdTesting.
struct CloudHarness {
    static let token = "gw-1-secret-token"
    static let otherToken = "gw-2-secret-token"
    /// A reader that sees every device.
    static let readerToken = "reader-secret-token"
    static let readerHeaders: HTTPFields = [.authorization: "Bearer \(readerToken)"]

    let directory: URL
    var config: CloudConfiguration

    init(store kind: StoreKind = .sqlite, _ configure: (inout CloudConfiguration) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("weir-cloud-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = CloudConfiguration()
        config.listen = "127.0.0.1:0"
        switch kind {
        case .sqlite: config.store = "sqlite:\(directory.appendingPathComponent("cloud.db").path)"
        case .postgres: config.store = try PostgresServer.shared().createDatabase()
        }
        config.gateways = ["gw-1": GatewayAccess(tokenHash: SHA256.hex(Self.token)), "gw-2": GatewayAccess(tokenHash: SHA256.hex(Self.otherToken))]
        config.readers = ["everything": ReaderAccess(tokenHashes: [SHA256.hex(Self.readerToken)])]
        configure(&config)
        self.config = config
    }

    var databasePath: String { directory.appendingPathComponent("cloud.db").path }

    func openStore() throws -> SQLiteReadingStore {
        try SQLiteReadingStore(path: databasePath, settings: ReconcileSettings(config))
    }

    /// The store `config.store` names, opened as weir-cloud opens it.
    func openConfiguredStore() async throws -> any ReadingStore {
        var logger = Logger(label: "weir.cloud.test")
        logger.logLevel = .warning
        return try await CloudApplication.openStore(config: config, logger: logger)
    }

    /// How many raw readings `store` (opened from this harness's config) keeps.
    func rawCount(_ store: any ReadingStore) async throws -> Int {
        if let sqlite = store as? SQLiteReadingStore { return try await sqlite.rawCount(sql: "SELECT COUNT(*) FROM raw") }
        let database = String(config.store.split(separator: "/").last ?? "")
        return Int(try PostgresServer.shared().psql("SELECT count(*) FROM raw", database: database)) ?? -1
    }

    /// Runs `body` against a fresh application over a newly opened store, then closes it.
    func withClient<T: Sendable>(_ setup: TestingSetup = .router, _ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        let store = try await openConfiguredStore()
        var logger = Logger(label: "weir.cloud.test")
        logger.logLevel = .warning
        let app = try CloudApplication.makeApplication(config: config, store: store, logger: logger)
        do {
            let result = try await app.test(setup, body)
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
        }
    }

    func removeFiles() {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Readings of one device and metric, for building batches tersely.
func readings(_ device: String, _ points: [(Int64, Double)], metric: String = "temp") -> [Reading] {
    points.map { Reading(device: device, metric: metric, ts: $0.0, value: $0.1) }
}

/// A round base time (aligned to 1 h) so windows are easy to reason about.
let t0: Int64 = 1_732_539_600_000

extension TestClientProtocol {
    /// Posts a batch as JSON; returns the status and, for 200, the decoded answer.
    @discardableResult
    func post(_ batch: Batch, token: String? = CloudHarness.token, encoding: String? = nil) async throws -> (HTTPResponse.Status, BatchAnswer?) {
        var body = batch.jsonBytes()
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let encoding {
            headers[.contentEncoding] = encoding
            body = encoding == "gzip" ? try Gzip.compress(body) : try Zstd.compress(body)
        }
        return try await postRaw(body, headers: headers)
    }

    func postRaw(_ body: [UInt8], headers: HTTPFields) async throws -> (HTTPResponse.Status, BatchAnswer?) {
        try await execute(uri: "/v1/batches", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { response in
            let answer = response.status == .ok ? try JSONDecoder().decode(BatchAnswer.self, from: Data(response.body.readableBytesView)) : nil
            return (response.status, answer)
        }
    }

    /// The windows of one series and size.
    func windows(_ device: String, _ metric: String = "temp", size: String = "60s", query extra: String = "") async throws -> [WindowsAnswer.Window] {
        try await execute(uri: "/v1/devices/\(device)/windows?metric=\(metric)&size=\(size)\(extra)", method: .get, headers: CloudHarness.readerHeaders) { response in
            #expect(response.status == .ok, "windows of \(device)/\(metric): \(String(buffer: response.body))")
            return try JSONDecoder().decode(WindowsAnswer.self, from: Data(response.body.readableBytesView)).windows
        }
    }

    func devices() async throws -> [DeviceSummary] {
        try await execute(uri: "/v1/devices", method: .get, headers: CloudHarness.readerHeaders) { response in
            #expect(response.status == .ok)
            return try JSONDecoder().decode([DeviceSummary].self, from: Data(response.body.readableBytesView))
        }
    }

    func errorMessage(_ response: TestResponse) -> String {
        (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: [String: String]])?["error"]?["message"] ?? ""
    }
}

extension WindowsAnswer.Window {
    /// The numbers a user reads off a window, for comparing runs.
    var numbers: String {
        "\(start) n=\(count) sum=\(sum) min=\(min) max=\(max) first=\(first.ts):\(first.value) last=\(last.ts):\(last.value)"
    }
}

extension HTTPFields {
    /// These fields with `other`'s added (a test's reader token plus one more header).
    func merging(_ other: HTTPFields) -> HTTPFields {
        var fields = self
        for field in other { fields.append(field) }
        return fields
    }
}
