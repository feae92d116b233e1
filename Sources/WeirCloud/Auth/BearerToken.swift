import HTTPTypes
import Hummingbird

/// The token of an `Authorization: Bearer <token>` header.
enum BearerToken {
    /// The token, `nil` when the header is missing; throws `401` for another scheme.
    static func from(_ request: Request, expecting what: String) throws -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw CloudHTTPError(.unauthorized, "Authorization header is not 'Bearer <\(what)>'")
        }
        return parts[1].trimmingSpaces()
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
