/// One device as `GET /v1/devices` lists it.
public struct CloudDevice: Sendable, Hashable, Codable {
    public var device: String
    public var last_seen: Int64?
    public var watermark: Int64?
    /// Distinct readings stored.
    public var readings: Int64
    /// Repeats discarded.
    public var duplicates: Int64?
    public var late: Int64?
    /// Repeats whose value differed from the stored one (never expected from the simulator).
    public var conflicts: Int64?
    /// Readings the edge reported as evicted before forwarding (its drop ledger).
    public var dropped_at_edge: Int64?

    public init(device: String, readings: Int64, duplicates: Int64? = nil, late: Int64? = nil, droppedAtEdge: Int64? = nil) {
        self.device = device
        self.readings = readings
        self.duplicates = duplicates
        self.late = late
        dropped_at_edge = droppedAtEdge
    }

    // Only the counts matter to the verifier; times it does not use may come in any form.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        device = try c.decode(String.self, forKey: .device)
        readings = try c.decode(Int64.self, forKey: .readings)
        last_seen = try? c.decodeIfPresent(Int64.self, forKey: .last_seen)
        watermark = try? c.decodeIfPresent(Int64.self, forKey: .watermark)
        duplicates = try c.decodeIfPresent(Int64.self, forKey: .duplicates)
        late = try c.decodeIfPresent(Int64.self, forKey: .late)
        conflicts = try c.decodeIfPresent(Int64.self, forKey: .conflicts)
        dropped_at_edge = try c.decodeIfPresent(Int64.self, forKey: .dropped_at_edge)
    }
}
