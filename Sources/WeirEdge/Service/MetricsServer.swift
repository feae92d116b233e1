import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import WeirCore
import WeirSupport

/// `GET /metrics` (Prometheus text) and `GET /healthz` on `metrics.listen`. `/healthz`
/// answers the `EdgeHealth` snapshot as JSON: 200, or 503 while ingest is stalled.
enum MetricsServer {
    static func make(host: String, port: Int, health: EdgeHealth, logger: Logger) -> any Service {
        let router = Router()
        router.addRoutes(PrometheusExport.routes(context: BasicRequestContext.self))
        router.get("/healthz") { _, _ -> Response in
            let snapshot = health.snapshot
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            let body = (try? encoder.encode(snapshot)) ?? Data("{\"status\":\"\(snapshot.status)\"}".utf8)
            return Response(status: .init(code: snapshot.httpStatus), headers: headers,
                            body: .init(byteBuffer: ByteBuffer(bytes: body + Data("\n".utf8))))
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "weir-edge"),
                              logger: logger)
        return Listening(server: app, address: "\(host):\(port)")
    }

    /// The server, with its address in the error when it cannot listen ("Address already in
    /// use" alone does not say which key to change).
    struct Listening: Service {
        let server: any Service
        let address: String

        func run() async throws {
            do {
                try await server.run()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw WeirError(.network, "cannot serve metrics.listen \(address): \(error)")
            }
        }
    }
}
