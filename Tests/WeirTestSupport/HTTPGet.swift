import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Minimal HTTP for tests: GET a URL and decode JSON (the cloud's query API).
public enum HTTPGet {
    /// GETs `url`; returns the status code and body.
    public static func fetch(_ url: String, headers: [String: String] = [:]) async throws -> (status: Int, body: Data) {
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
    public static func json<T: Decodable>(_ type: T.Type, _ url: String, token: String? = CloudProcess.readerToken) async throws -> T {
        let (status, body) = try await fetch(url, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:])
        guard status == 200 else {
            throw TestSupportError("GET \(url) → \(status): \(String(decoding: body.prefix(500), as: UTF8.self))")
        }
        return try JSONDecoder().decode(T.self, from: body)
    }
}
