import Hummingbird
import Logging
import ServiceLifecycle
import WeirSupport

/// `GET /metrics` (Prometheus text) and `GET /healthz` on `metrics.listen`.
enum MetricsServer {
    static func make(host: String, port: Int, logger: Logger) -> any Service {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = PrometheusExport.contentType
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: PrometheusExport.render())))
        }
        router.get("/healthz") { _, _ in "ok\n" }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "weir-edge"),
                           logger: logger)
    }
}
