import AsyncHTTPClient
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import NIOHTTP1
import NIOSSL

/// Minimal HTTP for tests: GET a URL and decode JSON (the cloud's query API).
public enum HTTPGet {
    /// TLS for a request to an HTTPS weir-cloud: the CA to trust and, for mutual TLS, a
    /// client certificate.
    public struct TLS: Sendable {
        public var caFile: String
        public var clientCertFile: String?
        public var clientKeyFile: String?

        public init(caFile: String, clientCertFile: String? = nil, clientKeyFile: String? = nil) {
            self.caFile = caFile
            self.clientCertFile = clientCertFile
            self.clientKeyFile = clientKeyFile
        }
    }

    /// Any request over async-http-client (HTTPS with `tls`); returns the status, the
    /// headers and the body. A failed handshake throws.
    public static func request(_ method: String, _ url: String, headers: [String: String] = [:], body: [UInt8]? = nil,
                               tls: TLS? = nil) async throws -> (status: Int, headers: [String: String], body: Data) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        if let tls {
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(tls.caFile))
            if let cert = tls.clientCertFile, let key = tls.clientKeyFile {
                settings.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                settings.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            configuration.tlsConfiguration = settings
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .RAW(value: method)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response = try await client.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 64 << 20)
            var fields: [String: String] = [:]
            for header in response.headers { fields[header.name.lowercased()] = header.value }
            try await client.shutdown()
            return (Int(response.status.code), fields, Data(bytes.readableBytesView))
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// GETs `url`; returns the status code and body. With `tls` (an HTTPS cloud) it goes
    /// through ``request(_:_:headers:body:tls:)``.
    public static func fetch(_ url: String, headers: [String: String] = [:], tls: TLS? = nil) async throws -> (status: Int, body: Data) {
        if let tls {
            let answer = try await request("GET", url, headers: headers, tls: tls)
            return (answer.status, answer.body)
        }
        guard let target = URL(string: url) else { throw TestSupportError("bad URL \(url)") }
        var request = URLRequest(url: target)
        request.timeoutInterval = 10
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        return (status, data)
    }

    /// GETs `url` with a reader token (by default the one ``CloudProcess`` configures) and
    /// decodes a 200 response's JSON body as `T`.
    public static func json<T: Decodable>(_ type: T.Type, _ url: String, token: String? = CloudProcess.readerToken, tls: TLS? = nil) async throws -> T {
        let (status, body) = try await fetch(url, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:], tls: tls)
        guard status == 200 else {
            throw TestSupportError("GET \(url) → \(status): \(String(decoding: body.prefix(500), as: UTF8.self))")
        }
        return try JSONDecoder().decode(T.self, from: body)
    }
}
