import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import WeirCloud
import WeirCompression
import WeirCore
import WeirWire

/// The ingest endpoint's answers to bad input and authentication, and the encodings.
@Suite struct IngestHTTPTests {
    static let good = Batch(gateway: "gw-1", id: "good", readings: readings("d1", [(t0 + 1_000, 1), (t0 + 2_000, 2)]))

    struct BadInput: Sendable, CustomStringConvertible {
        var description: String
        var body: [UInt8]
        var headers: HTTPFields
        var status: HTTPResponse.Status
        var messageContains: String
    }

    static let json: HTTPFields = [.contentType: "application/json", .authorization: "Bearer \(CloudHarness.token)"]

    static func with(_ fields: HTTPFields, _ name: HTTPField.Name, _ value: String) -> HTTPFields {
        var copy = fields
        copy[name] = value
        return copy
    }

    static let badInputs: [BadInput] = [
        BadInput(description: "not JSON", body: Array("hello".utf8), headers: json, status: .badRequest, messageContains: "expected a JSON object"),
        BadInput(description: "truncated JSON", body: Array(#"{"gateway":"gw-1","batch":"x","readings":[{"device":"#.utf8), headers: json, status: .badRequest, messageContains: "byte"),
        BadInput(description: "JSON array", body: Array("[1,2]".utf8), headers: json, status: .badRequest, messageContains: "expected a JSON object"),
        BadInput(description: "readings not an array", body: Array(#"{"gateway":"gw-1","batch":"x","readings":5}"#.utf8), headers: json, status: .badRequest, messageContains: "\"readings\" must be an array"),
        BadInput(description: "missing batch key", body: Array(#"{"gateway":"gw-1","readings":[]}"#.utf8), headers: json, status: .badRequest, messageContains: "\"batch\""),
        BadInput(description: "absurd drop count", body: Array(#"{"gateway":"gw-1","batch":"x","readings":[],"drops":[{"device":"d","metric":"m","from":1,"to":2,"count":9223372036854775807}]}"#.utf8), headers: json, status: .badRequest, messageContains: "drops[0]"),
        BadInput(description: "empty body", body: [], headers: json, status: .badRequest, messageContains: "empty"),
        BadInput(description: "damaged gzip", body: [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7], headers: with(json, .contentEncoding, "gzip"), status: .badRequest, messageContains: "gzip"),
        BadInput(description: "damaged zstd", body: [0x28, 0xB5, 0x2F, 0xFD, 9, 9, 9, 9], headers: with(json, .contentEncoding, "zstd"), status: .badRequest, messageContains: "zstd"),
        BadInput(description: "unknown encoding", body: good.jsonBytes(), headers: with(json, .contentEncoding, "br"), status: .unsupportedMediaType, messageContains: "Content-Encoding"),
        BadInput(description: "unknown content type", body: good.jsonBytes(), headers: with(json, .contentType, "text/csv"), status: .unsupportedMediaType, messageContains: "Content-Type"),
        BadInput(description: "damaged binary batch", body: Array("WEIR garbage".utf8), headers: with(json, .contentType, "application/vnd.weir.batch"), status: .badRequest, messageContains: "binary"),
        BadInput(description: "over the body cap", body: [UInt8](repeating: 32, count: 5_000), headers: json, status: .contentTooLarge, messageContains: "bytes"),
        BadInput(description: "zstd bomb over the decoded cap", body: (try? Zstd.compress([UInt8](repeating: 32, count: 40_000))) ?? [], headers: with(json, .contentEncoding, "zstd"), status: .contentTooLarge, messageContains: "more than"),
    ]

    @Test(arguments: badInputs)
    func badInputIsAnsweredAndTheServerKeepsServing(_ input: BadInput) async throws {
        let harness = try CloudHarness {
            $0.maxBodyBytes = 4_096
            $0.maxDecodedBytes = 16_384
        }
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.execute(uri: "/v1/batches", method: .post, headers: input.headers, body: ByteBuffer(bytes: input.body)) { response in
                #expect(response.status == input.status)
                #expect(response.headers[.contentType] == "application/json")
                let message = client.errorMessage(response)
                #expect(message.contains(input.messageContains), "message: \(message)")
            }
            // Still serving, and nothing of the bad request was applied.
            let (status, answer) = try await client.post(Self.good)
            #expect(status == .ok)
            #expect(answer?.accepted == 2)
            #expect(try await client.windows("d1").first?.count == 2)
        }
    }

    @Test func invalidReadingsAreListedAndTheValidOnesApplied() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let body = #"""
                {"gateway":"gw-1","batch":"mixed","readings":[
                  {"device":"d1","metric":"temp","ts":\#(t0 + 1_000),"value":1.5},
                  {"device":"bad device","metric":"temp","ts":\#(t0),"value":1},
                  {"device":"d1","metric":"temp","ts":"yesterday","value":1},
                  {"device":"d1","metric":"temp","ts":\#(t0 + 2_000),"value":null},
                  {"device":"d1","metric":"temp","ts":\#(t0 + 3_000),"value":true},
                  {"device":"d1","ts":\#(t0 + 4_000),"value":1},
                  "not an object",
                  {"device":"d1","metric":"temp","ts":\#(t0 + 5_000),"value":2.5}
                ]}
                """#
            let (status, answer) = try await client.postRaw(Array(body.utf8), headers: IngestHTTPTests.json)
            #expect(status == .ok)
            #expect(answer?.accepted == 3)
            #expect(answer?.rejected.map(\.index) == [1, 2, 3, 5, 6])
            #expect(answer?.rejected[0].reason.contains("device contains ' '") == true)
            #expect(answer?.rejected[1].reason.contains("ts must be a number") == true)
            #expect(answer?.rejected[2].reason.contains("value must be a number") == true)
            #expect(answer?.rejected[3].reason.contains("metric is missing") == true)
            let w = try #require(try await client.windows("d1").first)
            #expect(w.count == 3)
            #expect(w.sum == 5)  // 1.5 + true (1) + 2.5
        }
        let store = try harness.openStore()
        let kept = try await store.rawCount(sql: "SELECT COUNT(*) FROM rejected WHERE batch = 'mixed'")
        try await store.close()
        #expect(kept == 5)
    }

    @Test func extremeTimestampsAreRejectedNotACrash() async throws {
        let harness = try CloudHarness { $0.windowSizes = [.seconds(7), .seconds(3600)] }
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let batch = Batch(gateway: "gw-1", id: "extreme", readings: readings("d1", [(Int64.max, 1), (Int64.min, 2), (t0, 3), (-5_000, 4)]))
            let (status, answer) = try await client.post(batch)
            #expect(status == .ok)
            #expect(answer?.accepted == 2)
            #expect(answer?.rejected.map(\.index) == [0, 1])
            #expect(answer?.rejected.first?.reason.contains("out of range") == true)
            // Times before 1970 use floor alignment: -5000 falls in [-7000, 0).
            let w = try await client.windows("d1", size: "7s")
            #expect(w.map(\.start) == [-7_000, WindowMath.start(of: t0, size: 7_000)])
            #expect(try await client.post(Self.good).0 == .ok)
        }
    }

    @Test func aWindowSumPastDoubleRangeIsStillAnswered() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Batch(gateway: "gw-1", id: "huge", readings: readings("d1", [(t0, 1.7e308), (t0 + 1_000, 1.7e308)])))
            try await client.execute(uri: "/v1/devices/d1/windows?metric=temp", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(text.contains(#""sum":"Infinity""#), "\(text)")
                #expect(text.contains(#""count":2"#))
            }
        }
    }

    @Test(arguments: ["gzip", "zstd"])
    func compressedBodiesAreAccepted(_ encoding: String) async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let (status, answer) = try await client.post(Self.good, encoding: encoding)
            #expect(status == .ok)
            #expect(answer?.accepted == 2)
            #expect(try await client.windows("d1").first?.sum == 3)
        }
    }

    @Test func binaryBatchesAreAccepted() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            let batch = Batch(gateway: "gw-1", id: "bin-1", readings: readings("d1", (0..<100).map { (t0 + Int64($0) * 1_000, 20 + Double($0) / 10) }))
            let body = try WireBatch.encode(batch)
            let headers: HTTPFields = [.contentType: "application/vnd.weir.batch", .authorization: "Bearer \(CloudHarness.token)"]
            let (status, answer) = try await client.postRaw(body, headers: headers)
            #expect(status == .ok)
            #expect(answer?.accepted == 100)
            let windows = try await client.windows("d1")
            #expect(windows.map(\.count) == [60, 40])
            let expectedSum: Double = (0..<60).map { 20 + Double($0) / 10 }.reduce(0, +)
            let gotSum: Double = windows.first?.sum ?? 0
            #expect(abs(gotSum - expectedSum) < 1e-9)
        }
    }

    @Test func authenticationMissingWrongRightAndOtherGateway() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            #expect(try await client.post(Self.good, token: nil).0 == .unauthorized)
            #expect(try await client.post(Self.good, token: "wrong-token").0 == .unauthorized)
            // gw-2's token cannot post for gw-1.
            #expect(try await client.post(Self.good, token: CloudHarness.otherToken).0 == .forbidden)
            // Nothing was applied by the refused requests.
            try await client.execute(uri: "/v1/devices/d1/windows?metric=temp", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .notFound)
            }
            let (status, answer) = try await client.post(Self.good)
            #expect(status == .ok)
            #expect(answer?.accepted == 2)
            #expect(try await client.windows("d1").first?.count == 2)
        }
    }

    @Test func queryErrorsNameTheProblem() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Self.good)
            for (uri, status, words) in [
                ("/v1/devices/d1/windows", HTTPResponse.Status.badRequest, "metric"),
                ("/v1/devices/d1/windows?metric=temp&size=7s", .badRequest, "not a configured window size"),
                ("/v1/devices/d1/windows?metric=temp&from=abc", .badRequest, "from"),
                ("/v1/devices/nope/windows?metric=temp", .notFound, "nope"),
            ] {
                try await client.execute(uri: uri, method: .get, headers: CloudHarness.readerHeaders) { response in
                    #expect(response.status == status, "\(uri)")
                    #expect(client.errorMessage(response).contains(words), "\(uri): \(client.errorMessage(response))")
                }
            }
            #expect(try await client.windows("d1", "hum").isEmpty)
        }
    }

    @Test func liveServerServesHealthMetricsAndBatches() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient(.live) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
            }
            let (status, answer) = try await client.post(Self.good, encoding: "zstd")
            #expect(status == .ok)
            #expect(answer?.accepted == 2)
            #expect(try await client.windows("d1").first?.count == 2)
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(response.status == .ok)
                #expect(text.contains("weir_cloud_batches_total"))
                #expect(text.contains("weir_cloud_commit_seconds"))
            }
        }
    }
}
