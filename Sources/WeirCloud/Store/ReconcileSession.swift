import WeirCore

/// The storage operations the ``Reconciler`` needs inside one transaction. A backend
/// (SQLite, PostgreSQL) implements these in its own SQL; what they mean — dedup, windows,
/// watermarks, lateness — lives once, in ``Reconciler``.
///
/// All calls happen inside one transaction opened by the store; if any throws, the store
/// rolls the whole batch back.
public protocol ReconcileSession {
    /// The device's id and newest event ts, creating the device if it is new.
    mutating func device(named name: String) throws -> (id: Int64, maxTs: Int64?)
    /// The series id of `(device, metric)`, creating it if new.
    mutating func series(deviceID: Int64, metric: String) throws -> Int64
    /// Stores a raw reading unless its identity is already stored. Returns `nil` when it
    /// was new, else the value stored first. `applied` is false for readings kept only so
    /// that a resend is recognised (late readings dropped by policy).
    mutating func insertRaw(seriesID: Int64, ts: Int64, value: Double, applied: Bool) throws -> Double?
    /// A stored window, or `nil`.
    mutating func window(_ key: WindowKey) throws -> WindowRecord?
    /// Writes a window: an insert when `isNew`, else an update of the stored row.
    mutating func saveWindow(seriesID: Int64, _ record: WindowRecord, isNew: Bool) throws
    /// Sets the device's newest ts and last-seen time and adds `delta` to its counters.
    mutating func updateDevice(id: Int64, maxTs: Int64?, lastSeen: Int64, delta: DeviceDelta) throws
    /// Keeps an invalid or too-late reading (ignored if this batch's index is already kept).
    mutating func recordRejected(gateway: String, batch: String, reading: RejectedReading, receivedAt: Int64) throws
    /// Audits a late reading dropped by `late_policy: drop`.
    mutating func recordLateDrop(seriesID: Int64, ts: Int64, value: Double, watermark: Int64, receivedAt: Int64) throws
    /// Stores a drop-ledger row; returns false when this batch's row `index` was stored before.
    mutating func recordEdgeDrop(deviceID: Int64, drop: DropRecord, gateway: String, batch: String, index: Int, receivedAt: Int64) throws -> Bool
    /// Records that the batch was applied (a resend updates the record).
    mutating func recordBatch(gateway: String, outcome: BatchOutcome, receivedAt: Int64) throws
}
