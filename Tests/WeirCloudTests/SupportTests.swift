import Foundation
import Logging
import Testing
@testable import WeirCloud
import WeirCore
import WeirSupport

@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
        ("test", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ])
    func knownVectors(_ input: String, _ digest: String) {
        #expect(SHA256.hex(input) == digest)
    }

    @Test func incrementalUpdatesMatchOneShot() {
        let data = Array((0..<1_000).map { UInt8($0 % 251) })
        var hasher = SHA256()
        hasher.update(data[0..<7])
        hasher.update(data[7..<500])
        hasher.update(data[500...])
        #expect(hasher.finalize() == SHA256.hash(data))
        // A million 'a' (FIPS 180-2 vector).
        #expect(SHA256.hexString(SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000)))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite struct BatchJSONTests {
    @Test func roundTripKeepsEveryField() throws {
        let batch = Batch(gateway: "gw-1", id: "gw-1:000042", readings: [
            Reading(device: "d1", metric: "temp", ts: 1_732_540_000_123, value: 21.5),
            Reading(device: "d-2/x:y", metric: "a.b_c", ts: -5, value: -1e-7),
            Reading(device: "d3", metric: "big", ts: 0, value: 1.7976931348623157e308),
        ], drops: [DropRecord(device: "d1", metric: "temp", from: 1, to: 9, count: 12)])
        let decoded = try Batch.decodeJSON(batch.jsonBytes())
        #expect(decoded.batch == batch)
        #expect(decoded.rejected.isEmpty)
        #expect(decoded.readingCount == 3)
    }

    @Test func escapesAndUnknownFieldsAreHandled() throws {
        let text = #"{"extra":{"nested":[1,{"x":null}]},"gateway":"gw\u002d1","batch":"b\"1","readings":[{"device":"d1","metric":"temp","ts":1.0e3,"value":2,"unit":"C"}]}"#
        let decoded = try Batch.decodeJSON(Array(text.utf8))
        #expect(decoded.batch.gateway == "gw-1")
        #expect(decoded.batch.id == "b\"1")
        #expect(decoded.batch.readings == [Reading(device: "d1", metric: "temp", ts: 1_000, value: 2)])
    }

    @Test(arguments: [
        ("", "empty"),
        ("{", "end of the body"),
        (#"{"gateway":"g","batch":"b"}"#, "\"readings\" is missing"),
        (#"{"gateway":1,"batch":"b","readings":[]}"#, "\"gateway\" must be a string"),
        (#"{"gateway":"g","batch":"b","readings":[]} x"#, "after the batch object"),
        (#"{"gateway":"g","batch":"b","readings":[],"drops":[{"device":"d","metric":"m","from":2,"to":1,"count":1}]}"#, "from is after to"),
    ])
    func nonBatchesAreErrorsNamingTheProblem(_ text: String, _ words: String) {
        #expect {
            _ = try Batch.decodeJSON(Array(text.utf8))
        } throws: { error in
            "\(error)".contains(words)
        }
    }

    /// Fields the batch reader skips (unknown ones, in the batch or in a reading) are still
    /// checked: a bad escape is a body that is not JSON (400), naming its byte — not a
    /// batch half taken.
    @Test(arguments: [
        (#"{"gateway":"g","batch":"b","readings":[{"device":"d","metric":"m","ts":1,"value":2,"unit":"\q"}]}"#,
         #"body is not a JSON batch: byte 92: unknown escape '\q'"#),
        (#"{"gateway":"g","batch":"b","x":"\u00zz","readings":[]}"#,
         #"body is not a JSON batch: byte 36: bad hex digit in \u escape"#),
        (#"{"gateway":"g","batch":"b","readings":[{"device":"d","metric":"m","ts":1,"value":2,"note":["\ud800"]}]}"#,
         #"body is not a JSON batch: byte 98: lone surrogate in \u escape"#),
    ])
    func badEscapeInASkippedFieldRejectsTheBody(_ text: String, _ message: String) {
        #expect {
            _ = try Batch.decodeJSON(Array(text.utf8))
        } throws: { error in
            (error as? WeirError)?.code == .badInput && (error as? WeirError)?.message == message
        }
    }

    @Test func validEscapesInSkippedFieldsKeepTheReadings() throws {
        let valid = #"{"x":"\\\"\/\b\f\n\r\t\u00e9","gateway":"g","batch":"b","readings":[{"device":"d","metric":"m","ts":1,"value":2,"unit":"\u00b0C"}]}"#
        #expect(try Batch.decodeJSON(Array(valid.utf8)).batch.readings == [Reading(device: "d", metric: "m", ts: 1, value: 2)])
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let text = #"{"gateway":"g","batch":"b","readings":[],"x":"# + String(repeating: "[", count: 100_000)
        #expect(throws: WeirError.self) { try Batch.decodeJSON(Array(text.utf8)) }
    }
}

@Suite struct CloudConfigTests {
    static let hash = SHA256.hex("t")

    func write(_ yaml: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("weir-cloud-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func yamlWithEnvironmentOverrides() async throws {
        let path = try write("""
            listen: 127.0.0.1:9999
            store: sqlite:/tmp/x.db
            windows: [10s, 1m]
            max_out_of_order: 2s
            late_policy: drop
            allowed_lateness: 30m
            raw_retention: 2d
            max_body: 1MiB
            gateways:
              gw-1: {token_sha256: "\(SHA256.hex("a"))"}
              gw-2:
                token_sha256: "\(SHA256.hex("b"))"
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let source = try ConfigSource.load(file: path, environmentPrefix: "WEIR_CLOUD", environment: [
            "WEIR_CLOUD_LISTEN": "0.0.0.0:8081",
            "WEIR_CLOUD_WINDOWS": "5s,60s,1h",
            "WEIR_CLOUD_GATEWAYS_GW_2_TOKEN_SHA256": SHA256.hex("c"),
        ])
        let config = try CloudConfiguration.load(from: source)
        #expect(config.listen == "0.0.0.0:8081")
        #expect(config.store == "sqlite:/tmp/x.db")
        #expect(config.windowSizesMs == [5_000, 60_000, 3_600_000])
        #expect(config.maxOutOfOrder == .seconds(2))
        #expect(config.latePolicy == .drop)
        #expect(config.allowedLateness == .seconds(1800))
        #expect(config.rawRetention == .seconds(2 * 86_400))
        #expect(config.maxBodyBytes == 1 << 20)
        #expect(config.gateways == ["gw-1": GatewayAccess(tokenHash: SHA256.hex("a")), "gw-2": GatewayAccess(tokenHash: SHA256.hex("c"))])
    }

    @Test(arguments: [
        ("windows: [10q]", "windows"),
        ("max_out_of_order: soon", "max_out_of_order"),
        ("late_policy: maybe", "late_policy"),
        ("listen: nowhere", "listen"),
        ("maxOutOfOrder: 5s", "unknown key"),
        ("listen: 127.0.0.1:8080\nmaxOutOfOrder: 5s", "line 2): unknown key"),
        ("windows: [10s]\nmax_out_of_order: soon", "line 2): 'soon' is not a duration"),
        ("gateways:\n  gw-1: {token_sha256: abc}", "token_sha256"),
        ("windows: [10s, 10s]", "twice"),
        // Tokens, readers, device globs and TLS files.
        ("gateways:\n  gw-1: {token_sha256: [\"\(hash)\", \"xyz\"]}", "gateways.gw-1.token_sha256"),
        ("gateways:\n  gw-1: {token_sha256: \"\(hash)\", devices: [\"plant a\"]}", "gateways.gw-1.devices"),
        ("gateways:\n  gw-1: {token_sha256: \"\(hash)\", max_readings_per_second: lots}", "gateways.gw-1.max_readings_per_second"),
        ("readers:\n  r: {token_sha256: \"short\"}", "readers.r.token_sha256"),
        ("readers:\n  r: {token_sha256: \"\(hash)\", devices: [\"a b\"]}", "readers.r.devices"),
        ("readers:\n  r: {devices: [\"*\"]}", "readers.r.token_sha256"),
        ("metrics_token_sha256: nope", "metrics_token_sha256"),
        ("tls: {cert_file: /x.pem}", "tls.key_file"),
        ("tls: {client_ca_file: /x.pem}", "tls.client_ca_file"),
        ("gateways:\n  gw-1: {token_sha256: \"\(hash)\"}\n  gw-2: {token_sha256: \"\(hash)\"}", "gateways.gw-2.token_sha256"),
    ])
    func badValuesNameTheKey(_ yaml: String, _ words: String) async throws {
        let path = try write(yaml)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            let source = try ConfigSource.load(file: path, environmentPrefix: "WEIR_CLOUD", environment: [:])
            _ = try CloudConfiguration.load(from: source)
        } throws: { error in
            "\(error)".contains(words)
        }
    }

    @Test func missingFileIsNamed() async {
        #expect {
            _ = try ConfigSource.load(file: "/nonexistent/weir.yaml", environmentPrefix: "WEIR_CLOUD", environment: [:])
        } throws: { error in
            "\(error)".contains("/nonexistent/weir.yaml")
        }
    }

    @Test func refusesToStartWithoutTokens() async throws {
        var config = CloudConfiguration()
        config.listen = "127.0.0.1:0"
        await #expect {
            try await CloudApplication.serve(config: config, logger: .init(label: "test"))
        } throws: { error in
            "\(error)".contains("--insecure-no-auth")
        }
    }

    @Test func theShippedExampleLoads() async throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("cloud/weir-cloud.yaml").path
        let config = try CloudConfiguration.load(from: try ConfigSource.load(file: path, environmentPrefix: "WEIR_CLOUD", environment: [:]))
        #expect(config.gateways["gw-1"] == GatewayAccess(tokenHash: SHA256.hex("test")))
        #expect(config.windowSizesMs == [60_000])
    }

    @Test func listsAndDevicesLoad() async throws {
        let path = try write("""
            gateways:
              gw-plant-a: {token_sha256: ["\(SHA256.hex("old"))", "\(SHA256.hex("new"))"], devices: ["plant-a-*"], max_readings_per_second: 50000}
              gw-2: {token_sha256: "\(SHA256.hex("x"))"}
            readers:
              dashboard: {token_sha256: "\(SHA256.hex("r"))", devices: ["plant-a-*", "lab-?"]}
              all: {token_sha256: "\(SHA256.hex("r2"))"}
            metrics_token_sha256: "\(SHA256.hex("m"))"
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try CloudConfiguration.load(from: try ConfigSource.load(file: path, environmentPrefix: "WEIR_CLOUD", environment: [:]))
        #expect(config.gateways["gw-plant-a"] == GatewayAccess(tokenHashes: [SHA256.hex("old"), SHA256.hex("new")], devices: ["plant-a-*"], maxReadingsPerSecond: 50_000))
        #expect(config.gateways["gw-2"] == GatewayAccess(tokenHash: SHA256.hex("x")))
        #expect(config.readers["dashboard"]?.devices == ["plant-a-*", "lab-?"])
        #expect(config.readers["all"]?.devices == ["*"])
        #expect(config.metricsTokenHash == SHA256.hex("m"))
    }
}
