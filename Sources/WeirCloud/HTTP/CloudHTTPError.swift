import Foundation
import HTTPTypes
import Hummingbird

/// An error answered to the client as `{"error": {"message": ...}}` with a chosen status
/// (and `Retry-After` for 429/503). Messages name the problem and carry no token or
/// payload beyond a short prefix.
public struct CloudHTTPError: HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    /// Seconds for `Retry-After`, if any.
    public var retryAfter: Int?
    /// Answer with `Connection: close` and close the connection after the answer (a
    /// refusal sent before the request body was read; see ``LingeringCloseHandler``).
    public var closesConnection = false

    public init(_ status: HTTPResponse.Status, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        if closesConnection { headers[.connection] = "close" }
        let body = CloudJSON.encode(ErrorBody(error: .init(message: message)))
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable { var message: String }
        var error: Detail
    }
}

/// JSON encoding of API answers.
enum CloudJSON {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Finite readings can still add up past Double's range (a window's sum).
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return Array(try encoder.encode(value))
        } catch {
            return Array(#"{"error":{"message":"response could not be encoded"}}"#.utf8)
        }
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: encode(value))))
    }
}
