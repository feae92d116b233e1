import Hummingbird

/// Lets a request through only with a reader token (`Authorization: Bearer <token>`),
/// and puts the reader into the context; `401` otherwise. Under `--insecure-no-auth`
/// every request reads every device.
///
/// ```swift
/// let reads = router.group().add(middleware: ReaderAuthMiddleware<CloudRequestContext>(authenticator: readers))
/// reads.get("/v1/devices") { request, context in ... context.reader!.devices.allows(name) ... }
/// ```
///
/// A route that finds its token elsewhere (the dashboard's cookie) calls
/// ``ReaderAuthenticator/reader(token:)`` itself.
public struct ReaderAuthMiddleware<Context: ReaderRequestContext>: RouterMiddleware {
    public let authenticator: ReaderAuthenticator

    public init(authenticator: ReaderAuthenticator) {
        self.authenticator = authenticator
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.reader = try authenticator.reader(for: request)
        return try await next(request, context)
    }
}
