/// What the edge sends in one `POST /v1/batches`: readings and drop-ledger rows from one
/// gateway, under an idempotency key.
///
/// ```swift
/// let batch = Batch(gateway: "gw-1", id: "gw-1:000042",
///                   readings: [Reading(device: "d1", metric: "temp", ts: 1_732_540_000_123, value: 21.5)])
/// ```
public struct Batch: Hashable, Sendable {
    /// The gateway that sent it.
    public var gateway: String
    /// The idempotency key of the request (`batch` on the wire).
    public var id: String
    public var readings: [Reading]
    public var drops: [DropRecord]

    public init(gateway: String, id: String, readings: [Reading], drops: [DropRecord] = []) {
        self.gateway = gateway
        self.id = id
        self.readings = readings
        self.drops = drops
    }
}
