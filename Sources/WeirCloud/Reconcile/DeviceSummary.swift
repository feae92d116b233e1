import WeirCore

/// One device as `GET /v1/devices` lists it.
public struct DeviceSummary: Sendable, Hashable, Codable {
    public var device: String
    /// Wall-clock time (epoch ms) of the last batch that carried one of its readings.
    public var lastSeen: Int64?
    /// Newest event ts seen minus `max_out_of_order`; `nil` before the first reading.
    public var watermark: Int64?
    /// Distinct readings stored and applied.
    public var readings: Int64
    /// Repeats that were discarded.
    public var duplicates: Int64
    public var late: Int64
    public var conflicts: Int64
    public var tooLate: Int64
    public var droppedLate: Int64
    /// Readings the edge reported lost (drop ledger).
    public var droppedAtEdge: Int64

    public init(device: String, lastSeen: Int64?, watermark: Int64?, readings: Int64, duplicates: Int64,
                late: Int64, conflicts: Int64, tooLate: Int64, droppedLate: Int64, droppedAtEdge: Int64) {
        self.device = device
        self.lastSeen = lastSeen
        self.watermark = watermark
        self.readings = readings
        self.duplicates = duplicates
        self.late = late
        self.conflicts = conflicts
        self.tooLate = tooLate
        self.droppedLate = droppedLate
        self.droppedAtEdge = droppedAtEdge
    }

    enum CodingKeys: String, CodingKey {
        case device, watermark, readings, duplicates, late, conflicts
        case lastSeen = "last_seen"
        case tooLate = "too_late"
        case droppedLate = "dropped_late"
        case droppedAtEdge = "dropped_at_edge"
    }
}

/// Per-device counter changes of one batch.
public struct DeviceDelta: Sendable, Hashable {
    public var readings: Int64 = 0
    public var duplicates: Int64 = 0
    public var late: Int64 = 0
    public var conflicts: Int64 = 0
    public var tooLate: Int64 = 0
    public var droppedLate: Int64 = 0
    public var droppedAtEdge: Int64 = 0
    /// Whether the batch touched the device at all (its row is updated even with zero counts,
    /// for `last_seen` and the watermark).
    public var touched = false
    /// The newest event ts of the device's new readings in this batch.
    public var newestTs: Int64?

    public init() {}

    /// Adds a later batch's counter changes to these (the watermark and `touched` are the
    /// caller's: they are not sums).
    public mutating func addCounters(of other: DeviceDelta) {
        readings += other.readings
        duplicates += other.duplicates
        late += other.late
        conflicts += other.conflicts
        tooLate += other.tooLate
        droppedLate += other.droppedLate
        droppedAtEdge += other.droppedAtEdge
    }
}

extension DeviceSummary {
    /// Adds a batch's counter changes to the device's totals.
    public mutating func addCounters(of delta: DeviceDelta) {
        readings += delta.readings
        duplicates += delta.duplicates
        late += delta.late
        conflicts += delta.conflicts
        tooLate += delta.tooLate
        droppedLate += delta.droppedLate
        droppedAtEdge += delta.droppedAtEdge
    }
}
