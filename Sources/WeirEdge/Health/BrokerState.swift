/// The broker connection as `weir-edge status` and `/healthz` show it. The raw value is
/// the word written to the buffer file and the `broker` field of `/healthz`.
public enum BrokerState: String, Sendable, Codable, Hashable, CaseIterable {
    case connected
    /// Not yet connected, or the connection was lost (libmosquitto reconnects by itself).
    case notConnected = "not connected"
    /// The edge stopped (written on the way out, so `status` never claims a stopped
    /// edge is connected).
    case stopped
    /// No edge has run on this buffer file yet.
    case unknown
}
