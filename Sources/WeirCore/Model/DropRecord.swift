/// A loss the edge had to take (a buffer cap evicted readings), forwarded so the cloud
/// knows exactly what is missing: `count` readings of `(device, metric)` with event
/// times in `[from, to]`.
public struct DropRecord: Hashable, Sendable, Codable {
    public var device: String
    public var metric: String
    /// Earliest event time dropped, epoch ms.
    public var from: Int64
    /// Latest event time dropped, epoch ms (inclusive).
    public var to: Int64
    public var count: Int64

    public init(device: String, metric: String, from: Int64, to: Int64, count: Int64) {
        self.device = device
        self.metric = metric
        self.from = from
        self.to = to
        self.count = count
    }
}
