import Hummingbird
import NIOCore

extension PrometheusExport {
    /// The one `GET /metrics` route of Weir's programs: ``render()`` as Prometheus text.
    /// `authorize` runs first and throws to refuse the request (weir-cloud answers loopback
    /// clients or a metrics token; weir-edge answers whoever reaches `metrics.listen`).
    ///
    /// ```swift
    /// router.addRoutes(PrometheusExport.routes(context: BasicRequestContext.self))
    /// ```
    public static func routes<Context: RequestContext>(
        context: Context.Type,
        authorize: @escaping @Sendable (Request, Context) throws -> Void = { _, _ in }
    ) -> RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("/metrics") { request, context -> Response in
            try authorize(request, context)
            var headers = HTTPFields()
            headers[.contentType] = contentType
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: render())))
        }
        return routes
    }
}
