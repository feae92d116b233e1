import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WeirCore
import WeirWire

/// Reads the cloud's query API (`GET /v1/devices`, `GET /v1/devices/{device}/windows`).
///
/// ```swift
/// let cloud = try CloudClient(baseURL: "http://127.0.0.1:8080")
/// let devices = try await cloud.devices()
/// let windows = try await cloud.windows(device: "d0001", metric: "temp", size: 60_000, from: 0, to: .max)
/// ```
public struct CloudClient: Sendable {
    /// `http://host:port`, without a trailing slash.
    public let baseURL: String
    /// Optional bearer token for the query API.
    public var token: String?
    /// How long one request may take.
    public var timeout: Duration = .seconds(30)
    private let http: HTTPClient

    /// A client for the cloud at `baseURL` (`http://` or `https://`).
    public init(baseURL: String, token: String? = nil, httpClient: HTTPClient = .shared) throws(WeirError) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > 8 else {
            throw WeirError(.badArgument, "--cloud '\(baseURL.prefix(80))' is not an http:// or https:// URL (write e.g. http://127.0.0.1:8080)")
        }
        self.baseURL = url
        self.token = token
        http = httpClient
    }

    /// Every device the cloud knows.
    public func devices() async throws(WeirError) -> [CloudDevice] {
        try await get("/v1/devices", as: [CloudDevice].self, notFoundIsNil: false) ?? []
    }

    /// The windows of `size` ms of one series with `start` in `[from, to)`.
    public func windows(device: String, metric: String, size: Int64, from: Int64, to: Int64) async throws(WeirError) -> [WindowsAnswer.Window] {
        let path = "/v1/devices/\(Self.escape(device))/windows?metric=\(Self.escape(metric))&size=\(Self.sizeText(size))&from=\(from)&to=\(to)"
        // A device the cloud has never heard of has no windows (404).
        guard let list = try await get(path, as: WindowsAnswer.self, notFoundIsNil: true) else { return [] }
        return list.windows
    }

    /// The size as the API writes it: `60s`, `1500ms`.
    static func sizeText(_ ms: Int64) -> String {
        ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }

    /// Percent-encodes everything but unreserved characters (device names may hold `/` and `:`).
    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
            }
        }
        return out
    }

    private func get<T: Decodable>(_ path: String, as type: T.Type, notFoundIsNil: Bool) async throws(WeirError) -> T? {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .GET
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let body: ByteBuffer
        let status: UInt
        do {
            let response = try await http.execute(request, timeout: .init(timeout))
            status = response.status.code
            body = try await response.body.collect(upTo: 256 * 1024 * 1024)
        } catch {
            throw WeirError(.network, "GET \(baseURL)\(path) failed", cause: error)
        }
        if status == 404, notFoundIsNil { return nil }
        guard status == 200 else {
            let text = String(buffer: body).prefix(200)
            throw WeirError(.network, "GET \(baseURL)\(path) answered \(status): \(text)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw WeirError(.badInput, "GET \(baseURL)\(path) returned JSON that is not what DESIGN.md describes", cause: error)
        }
    }
}
