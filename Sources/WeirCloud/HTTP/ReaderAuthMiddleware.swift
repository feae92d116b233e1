import Foundation
import HTTPTypes
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
/// A browser gives the token once as `?token=` on any page: the answer is a `303` to the
/// same page without it, setting an HttpOnly cookie (`weir_reader`) that later requests
/// (pages, the changefeed's SSE) are read with.
public struct ReaderAuthMiddleware<Context: ReaderRequestContext>: RouterMiddleware {
    public let authenticator: ReaderAuthenticator

    public init(authenticator: ReaderAuthenticator) {
        self.authenticator = authenticator
    }

    /// The cookie that carries a browser's reader token (HttpOnly, set from `?token=`).
    public static var cookieName: String { "weir_reader" }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if request.headers[.authorization] == nil, !authenticator.insecureNoAuth {
            // A browser (the dashboard): the token once as `?token=`, then the cookie.
            if let token = request.uri.queryParameters.get("token"), request.method == .get {
                _ = try authenticator.reader(token: token)
                return Self.redirectSettingCookie(request, token: token)
            }
            if let token = Self.cookie(Self.cookieName, in: request) {
                context.reader = try authenticator.reader(token: token)
                return try await next(request, context)
            }
        }
        context.reader = try authenticator.reader(for: request)
        return try await next(request, context)
    }

    /// `303` to the same path without `token`, setting the cookie, so the token leaves the
    /// address bar and the history.
    static func redirectSettingCookie(_ request: Request, token: String) -> Response {
        let rest = request.uri.queryParameters.filter { $0.key != "token" }
            .map { "\($0.key)=\($0.value)" }.joined(separator: "&")
        let location = request.uri.path + (rest.isEmpty ? "" : "?\(rest)")
        var headers = HTTPFields()
        headers[.location] = location
        headers[.setCookie] = "\(cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict"
        return Response(status: .seeOther, headers: headers)
    }

    /// The value of cookie `name`, if the request carries it.
    static func cookie(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == name { return String(parts[1]) }
            }
        }
        return nil
    }
}
