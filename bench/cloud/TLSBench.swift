// bench/run cloud-tls  (= weir-bench-cloud --tls [--tls-readings N] [--tls-rounds N])
//
// What HTTPS costs weir-cloud, measured against plain HTTP in the same run, each on its
// own real weir-cloud process (release build) with a gateway token, SQLite store:
//   1. handshake + one batch: a new connection per request (`Connection: close`), one
//      binary batch of 100 readings, --tls-rounds times (default 200): median and p90;
//   2. one batch on a kept-alive connection (no handshake): median;
//   3. ingest: --tls-readings readings (default 2M) in binary batches of 10k posted one
//      after another on one kept-alive connection: readings/s.
// For HTTP, HTTPS and HTTPS with mutual TLS (a client certificate, the name check per
// batch). Certificates: a throwaway P-256 CA made with openssl. Prints HTTPS/HTTP ratios.
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import WeirCompression
import WeirCore
import WeirTestSupport

enum TLSBench {
    static let token = "bench-gateway-token"

    struct Target {
        var name: String
        var cloud: CloudProcess
        var tls: TLSConfiguration?
    }

    static func run(_ options: Options) async throws {
        let rounds = options.tlsRounds
        let total = options.tlsReadings
        print("weir-bench-cloud --tls: handshake + batch latency over \(rounds) new connections, ingest of \(total) readings in batches of 10k")
        setenv("WEIR_BIN_DIR", URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path, 1)
        let directory = options.directory + "/tls"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certs = try await TestCertificates.make(in: directory, name: "bench")
        let client = try await certs.issue("bench-gw-1", commonName: "gw-1", usage: .client)

        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certs.caFile))
        var mutualTLS = clientTLS
        mutualTLS.certificateChain = try NIOSSLCertificate.fromPEMFile(client.certFile).map { .certificate($0) }
        mutualTLS.privateKey = .privateKey(try NIOSSLPrivateKey(file: client.keyFile, format: .pem))

        var targets: [Target] = []
        for (name, tls, clientCA) in [("http", false, false), ("https", true, false), ("https+mtls", true, true)] {
            let dir = "\(directory)/\(name)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let cloud = try await CloudProcess.start(in: dir, tokens: ["gw-1": token], windows: ["60s"],
                                                     tls: tls ? certs : nil, clientCAFile: clientCA ? certs.caFile : nil)
            targets.append(Target(name: name, cloud: cloud, tls: tls ? (clientCA ? mutualTLS : clientTLS) : nil))
        }
        defer {
            for target in targets { Task { await target.cloud.stop() } }
        }

        var handshake: [String: (median: Double, p90: Double)] = [:]
        var keptAlive: [String: Double] = [:]
        var ingest: [String: Double] = [:]
        for target in targets {
            let http = makeClient(target.tls)
            do {
                // Warm-up: the first requests pay for the process's lazy setup.
                for i in 0..<5 { _ = try await post(http, target, batch(i, readings: 100, prefix: "warm"), close: true) }
                var samples: [Double] = []
                for i in 0..<rounds {
                    let started = ContinuousClock.now
                    try await post(http, target, batch(i, readings: 100, prefix: "new"), close: true)
                    samples.append(seconds(ContinuousClock.now - started))
                }
                samples.sort()
                handshake[target.name] = (samples[samples.count / 2], samples[samples.count * 9 / 10])
                var alive: [Double] = []
                for i in 0..<rounds {
                    let started = ContinuousClock.now
                    try await post(http, target, batch(i, readings: 100, prefix: "alive"), close: false)
                    alive.append(seconds(ContinuousClock.now - started))
                }
                alive.sort()
                keptAlive[target.name] = alive[alive.count / 2]

                let bodies = try stride(from: 0, to: total, by: 10_000).map { start in
                    ByteBuffer(bytes: try WireBatch.encode(bulk(start, count: min(10_000, total - start))))
                }
                let started = ContinuousClock.now
                for body in bodies { try await postBody(http, target, body, close: false) }
                ingest[target.name] = Double(total) / seconds(ContinuousClock.now - started)
                try await http.shutdown()
            } catch {
                try? await http.shutdown()
                throw error
            }
        }
        for target in targets { await target.cloud.stop() }

        let base = handshake["http"]!, alive = keptAlive["http"]!, rate = ingest["http"]!
        for name in ["http", "https", "https+mtls"] {
            let h = handshake[name]!, k = keptAlive[name]!, r = ingest[name]!
            print(String(format: "%@ new connection + batch: median %6.2f ms, p90 %6.2f ms (×%.2f of http) | kept-alive batch: median %6.2f ms (×%.2f) | ingest %9.0f readings/s (×%.2f)",
                         name.padding(toLength: 11, withPad: " ", startingAt: 0) as NSString, h.median * 1000, h.p90 * 1000, h.median / base.median, k * 1000, k / alive, r, r / rate))
        }
    }

    static func makeClient(_ tls: TLSConfiguration?) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = tls
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        configuration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    static func batch(_ i: Int, readings: Int, prefix: String) throws -> ByteBuffer {
        let base: Int64 = 1_732_539_600_000 + Int64(i) * 100_000
        let rs = (0..<readings).map { Reading(device: "d\($0 % 10)", metric: "temp", ts: base + Int64($0) * 100, value: Double($0 % 50) / 2) }
        return ByteBuffer(bytes: try WireBatch.encode(Batch(gateway: "gw-1", id: "\(prefix)-\(i)", readings: rs)))
    }

    static func bulk(_ start: Int, count: Int) -> Batch {
        let base: Int64 = 1_732_000_000_000
        let rs = (start..<start + count).map { n in
            Reading(device: "bulk-\(n % 1_000)", metric: "temp", ts: base + Int64(n / 1_000) * 1_000, value: Double(n % 400) / 10)
        }
        return Batch(gateway: "gw-1", id: "bulk-\(start)", readings: rs)
    }

    @discardableResult
    static func post(_ http: HTTPClient, _ target: Target, _ body: ByteBuffer, close: Bool) async throws -> Int {
        try await postBody(http, target, body, close: close)
    }

    @discardableResult
    static func postBody(_ http: HTTPClient, _ target: Target, _ body: ByteBuffer, close: Bool) async throws -> Int {
        var request = HTTPClientRequest(url: "\(target.cloud.url)/v1/batches")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/vnd.weir.batch")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if close { request.headers.add(name: "Connection", value: "close") }
        request.body = .bytes(body)
        let response = try await http.execute(request, timeout: .seconds(120))
        let answer = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else { throw BenchError("\(target.name): POST answered \(response.status): \(String(buffer: answer))") }
        return answer.readableBytes
    }
}
