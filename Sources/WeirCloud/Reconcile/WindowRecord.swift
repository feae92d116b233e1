import WeirCore

/// One stored tumbling window of one series: its aggregates and how often late readings
/// changed it after it closed.
public struct WindowRecord: Sendable, Hashable {
    /// Window size in milliseconds.
    public var sizeMs: Int64
    /// Start, epoch ms (`floor(ts / size) * size`).
    public var start: Int64
    public var aggregate: WindowAggregate
    /// How many batches changed the window after it had closed.
    public var revision: Int64
    /// How many late readings (arriving after the window closed) it holds.
    public var late: Int64

    public init(sizeMs: Int64, start: Int64, aggregate: WindowAggregate, revision: Int64 = 0, late: Int64 = 0) {
        self.sizeMs = sizeMs
        self.start = start
        self.aggregate = aggregate
        self.revision = revision
        self.late = late
    }

    /// End of the window (exclusive), epoch ms.
    public var end: Int64 { start + sizeMs }
}

/// Identifies a window in a store: series, size and start.
public struct WindowKey: Hashable, Sendable {
    public var seriesID: Int64
    public var sizeMs: Int64
    public var start: Int64

    public init(seriesID: Int64, sizeMs: Int64, start: Int64) {
        self.seriesID = seriesID
        self.sizeMs = sizeMs
        self.start = start
    }
}
