import Foundation

/// What one `POST /v1/batches` came to, as the ``UplinkStateMachine`` takes it: the
/// cloud's HTTP answer sorted by what the edge does about it, or why there was none.
///
/// ```swift
/// UplinkResponse(status: 429, retryAfter: "2", body: "slow down")
/// // .slowDown(status: 429, retryAfter: .seconds(2), body: "slow down")
/// ```
enum UplinkResponse: Sendable, Hashable {
    /// 2xx: the cloud committed the batch.
    case committed
    /// 401/403: the cloud refused the gateway token.
    case unauthorized(status: Int, body: String)
    /// 404/405: the URL does not lead to weir-cloud's batch endpoint (which always has
    /// `POST /v1/batches`); it says nothing about the batch.
    case endpointNotFound(status: Int, body: String)
    /// 413: the body is over the cloud's cap.
    case tooLarge
    /// 429: this replica is overloaded; wait `Retry-After` when given. Another replica
    /// of the same cloud would share its limits, so the URL stays.
    case slowDown(status: Int, retryAfter: Duration?, body: String)
    /// 5xx: this replica is in trouble, another may not be. Only a 503 brings a
    /// `Retry-After` worth waiting for.
    case serverError(status: Int, retryAfter: Duration?, body: String)
    /// 408: the cloud gave up waiting for the body; the same URL again.
    case requestTimeout(body: String)
    /// A status no weir-cloud answers (1xx, 3xx): the same URL again.
    case unexpected(status: Int)
    /// Any other 4xx: the cloud refuses this batch for good.
    case rejected(status: Int, body: String)
    /// No HTTP answer: the connection failed or was reset, or the request timed out.
    case unreachable(reason: String)
    /// The TLS handshake failed over a certificate.
    case certificateProblem(UplinkTLSProblem)
    /// The request could not be made (encoding its body failed); the same URL again.
    case notSent(reason: String)

    /// Sorts an HTTP answer; `retryAfter` is the raw `Retry-After` header.
    init(status: Int, retryAfter: String?, body: String) {
        switch status {
        case 200..<300: self = .committed
        case 401, 403: self = .unauthorized(status: status, body: body)
        case 404, 405: self = .endpointNotFound(status: status, body: body)
        case 413: self = .tooLarge
        case 429: self = .slowDown(status: status, retryAfter: Self.retryAfter(retryAfter), body: body)
        case 503: self = .serverError(status: status, retryAfter: Self.retryAfter(retryAfter), body: body)
        case 408: self = .requestTimeout(body: body)
        case 500..<600: self = .serverError(status: status, retryAfter: nil, body: body)
        case 400..<500: self = .rejected(status: status, body: body)
        default: self = .unexpected(status: status)
        }
    }

    /// `Retry-After` in seconds (the HTTP-date form is rare from our cloud; it falls back
    /// to the backoff). Capped at 5 minutes, so a confused proxy cannot park the uplink.
    static func retryAfter(_ value: String?) -> Duration? {
        guard let value, let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 else { return nil }
        return .milliseconds(Int64(min(seconds, 300) * 1000))
    }
}
