/// The uplink's state as `weir-edge status` shows it. The raw value is the word written
/// to the buffer file and shown on the `uplink:` line, so the text is defined here, once.
///
/// ```
/// uplink:               uplink unauthorized (to https://cloud.example:8443)
/// ```
public enum UplinkState: String, Sendable, Codable, Hashable, CaseIterable {
    /// Nothing sent yet since the edge started.
    case idle
    /// The last batch was committed (or refused for good: the cloud answered).
    case ok
    /// A URL of `uplink.url` failed; the same batch goes to the next one at once.
    case failingOver = "failing over"
    /// Every URL failed (network error, timeout, 5xx, 429): backing off.
    case retrying
    /// 401/403: the cloud refused the gateway token. Every chunk is kept.
    case unauthorized = "uplink unauthorized"
    /// The TLS handshake failed over a certificate. Every chunk is kept.
    case certificateProblem = "uplink certificate problem"
    /// 404/405: `uplink.url` does not lead to weir-cloud's batch endpoint. Every chunk is kept.
    case endpointNotFound = "uplink endpoint not found"
    /// The buffer file failed under the uplink (disk full, I/O error).
    case error
}
