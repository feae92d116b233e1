import Foundation

/// A failed POST that is a certificate problem — the cloud's certificate does not verify
/// or does not name the host, or the cloud refused this gateway's client certificate —
/// worded naming the config key to fix. Such a failure is not a network outage: retrying
/// alone will not fix it, so the uplink reports it like a 401 (keeping every chunk)
/// instead of as "retrying".
///
/// ```swift
/// if let problem = UplinkTLSProblem(error, uplink: configuration.uplink) {
///     // problem.code == .untrustedCertificate: ask CloudCertificateDiagnosis why
/// }
/// ```
struct UplinkTLSProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which side to fix, for callers that branch on it.
    enum Code: Sendable, Hashable {
        /// The cloud's certificate does not name the host in `uplink.url`.
        case hostnameMismatch
        /// The cloud's certificate did not verify against the trust (`uplink.ca_file`):
        /// another CA, expired or not yet valid (``CloudCertificateDiagnosis`` tells which).
        case untrustedCertificate
        /// The cloud refused this gateway's client certificate (or wanted one).
        case clientCertificateRefused
        /// The URL is `https://` but the server does not speak TLS.
        case notTLS
    }

    var code: Code
    /// What went wrong and the key to fix, starting "uplink certificate problem: ".
    var message: String

    var description: String { message }

    /// The problem `error` is, or `nil` when it is not a certificate problem. Matched on
    /// the error's text because async-http-client may wrap swift-nio-ssl's errors.
    init?(_ error: any Error, uplink: EdgeConfiguration.Uplink) {
        let text = String(reflecting: error)
        let host = Self.hostOf(uplink.url)
        if text.contains("failedToValidateHostname") || text.contains("HOSTNAME_MISMATCH") {
            self.init(.hostnameMismatch, "the cloud's certificate does not name host '\(host)'; fix uplink.url's host or the cloud's tls.cert_file (\(Self.short(text)))")
            return
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            let trust = uplink.caFile.map { "uplink.ca_file (\($0))" } ?? "the system's trust store (set uplink.ca_file)"
            self.init(.untrustedCertificate, "the cloud's certificate did not verify against \(trust): signed by another CA, expired or not yet valid; fix uplink.ca_file or the cloud's tls.cert_file (\(Self.short(text)))")
            return
        }
        let refusedOurs = ["CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_EXPIRED", "CERTIFICATE_UNKNOWN",
                           "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE", "HANDSHAKE_FAILURE"]
        if text.contains("ALERT"), refusedOurs.contains(where: text.contains) {
            let ours = uplink.clientCertFile.map { "uplink.client_cert_file (\($0)) / uplink.client_key_file" }
                ?? "uplink.client_cert_file / uplink.client_key_file (none set; the cloud requires a client certificate)"
            self.init(.clientCertificateRefused, "the cloud refused this gateway's client certificate; fix \(ours) (\(Self.short(text)))")
            return
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") {
            self.init(.notTLS, "\(uplink.url) does not speak TLS; fix uplink.url (http:// for a plain-HTTP cloud) (\(Self.short(text)))")
            return
        }
        return nil
    }

    /// `detail` is worded after "uplink certificate problem: ".
    init(_ code: Code, _ detail: String) {
        self.code = code
        self.message = "uplink certificate problem: \(detail)"
    }

    static func hostOf(_ url: String) -> String {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        let authority = rest.prefix { $0 != "/" }
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<close])
        }
        return String(authority.prefix { $0 != ":" })
    }

    private static func short(_ text: String) -> String {
        String(text.prefix(300))
    }
}
