import WeirCore

/// What applying one batch did: the numbers of the `200` answer.
public struct BatchOutcome: Sendable, Hashable {
    /// The batch's idempotency key.
    public var batch: String
    /// Readings in the body, valid or not.
    public var received: Int = 0
    /// New distinct readings applied to windows.
    public var accepted: Int = 0
    /// Readings already stored (from this batch or an earlier one), not counted again.
    /// Conflicts are duplicates too.
    public var duplicates: Int = 0
    /// New readings whose window had already closed (applied or, under
    /// `late_policy: drop`, dropped).
    public var late: Int = 0
    /// Duplicates whose value differs from the stored one (the stored value stays).
    public var conflicts: Int = 0
    /// Readings older than `raw_retention` behind their device's newest reading: rejected.
    public var tooLate: Int = 0
    /// Late readings past `allowed_lateness` under `late_policy: drop`: audited, not applied.
    public var droppedLate: Int = 0
    /// Invalid and too-late readings, by index in the batch.
    public var rejected: [RejectedReading] = []
    /// The newest watermark among the batch's devices (for the watermark-lag metric).
    public var newestWatermark: Int64?

    public init(batch: String) {
        self.batch = batch
    }
}
