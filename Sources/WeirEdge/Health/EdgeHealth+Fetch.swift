import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension EdgeHealth {
    /// Asks a running edge's `/healthz` at `listen` (`metrics.listen`); `nil` when nothing
    /// answers within `timeout` (the edge is not running, or listens elsewhere).
    public static func fetch(listen: String, timeout: Duration = .seconds(1)) async -> Snapshot? {
        var request = HTTPClientRequest(url: "http://\(listen)/healthz")
        request.method = .GET
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout.components.seconds * 1000)))
            let body = try await response.body.collect(upTo: 64 * 1024)
            return try JSONDecoder().decode(Snapshot.self, from: Data(body.readableBytesView))
        } catch {
            return nil
        }
    }
}
