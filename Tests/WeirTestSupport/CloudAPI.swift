import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WeirCore
import WeirWire

/// The cloud's HTTP API as tests use it against a real process: a batch sent as JSON
/// (`Batch.jsonBytes()`, the one JSON batch writer) and the windows read back as
/// ``WindowsAnswer`` (the one definition the cloud writes).
///
/// ```swift
/// let sent = try await CloudAPI.post(batch, to: cloud.url, token: "secret")   // (200, answer, body)
/// let windows = try await CloudAPI.windows(of: "d1", metric: "temp", size: "60s", in: cloud)
/// ```
public enum CloudAPI {
    /// POSTs `batch` as JSON to `POST /v1/batches` (HTTPS with `tls`); the status, the
    /// decoded answer when it is 200, and the body as sent.
    public static func post(_ batch: Batch, to cloudURL: String, token: String?, tls: HTTPGet.TLS? = nil)
        async throws -> (status: Int, answer: BatchAnswer?, body: Data) {
        var headers = ["Content-Type": "application/json"]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        let url = cloudURL + "/v1/batches"
        let status: Int
        let body: Data
        if let tls {
            (status, _, body) = try await HTTPGet.request("POST", url, headers: headers, body: batch.jsonBytes(), tls: tls)
        } else {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: batch.jsonBytes()))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            status = Int(response.status.code)
            body = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        }
        let answer = status == 200 ? try JSONDecoder().decode(BatchAnswer.self, from: body) : nil
        return (status, answer, body)
    }

    /// POSTs `batch` and expects `200`; the answer.
    @discardableResult
    public static func postAccepted(_ batch: Batch, to cloudURL: String, token: String?, tls: HTTPGet.TLS? = nil) async throws -> BatchAnswer {
        let sent = try await post(batch, to: cloudURL, token: token, tls: tls)
        guard let answer = sent.answer else {
            throw TestSupportError("POST \(cloudURL)/v1/batches (\(batch.id)) → \(sent.status): \(String(decoding: sent.body.prefix(300), as: UTF8.self))")
        }
        return answer
    }

    /// The windows of `size` (as the API writes it: `1s`, `60s`) of one series of `cloud`
    /// with start in `[from, to)`, read with ``CloudProcess/readerToken``; none while the
    /// cloud has no reading from the device (`404`).
    public static func windows(of device: String, metric: String, size: String, from: Int64 = .min, to: Int64 = .max,
                               in cloud: CloudProcess) async throws -> [WindowsAnswer.Window] {
        let url = "\(cloud.url)/v1/devices/\(device)/windows?metric=\(metric)&size=\(size)&from=\(from)&to=\(to)"
        let (status, body) = try await HTTPGet.fetch(url, headers: CloudProcess.readerHeaders, tls: cloud.clientTLS)
        if status == 404 { return [] }
        guard status == 200 else {
            throw TestSupportError("GET \(url) → \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
        }
        return try JSONDecoder().decode(WindowsAnswer.self, from: body).windows
    }
}
