import WeirCore

// The data that passes between ``Reconciler`` and a store for one batch:
// plan (names the batch touches) → load (stored keys, readings, windows) → decide
// (``BatchChanges``) → commit. Stores fill these in bulk; none of them carries meaning.

/// A series by name: one metric of one device.
public struct SeriesName: Hashable, Sendable {
    public var device: String
    public var metric: String

    public init(device: String, metric: String) {
        self.device = device
        self.metric = metric
    }
}

/// What a batch names: the store creates what is new and locks the devices.
///
/// Devices and series are interned to dense indexes once, when the batch is planned, so
/// every later step reaches a reading's series and device by array index, not by hashing
/// names again.
public struct BatchPlan: Sendable {
    /// Devices of the batch's readings and drop-ledger rows, distinct and sorted by name.
    public var devices: [String]
    /// `(device, metric)` of the batch's readings, distinct, in order of first appearance.
    public var series: [SeriesName]
    /// For each of `series`, the index of its device in `devices`.
    public var seriesDevice: [Int]
    /// For each of the batch's readings, the index of its series in `series`.
    public var readingSeries: [Int]
    /// For each of the batch's drop-ledger rows, the index of its device in `devices`.
    public var dropDevice: [Int]
}

/// A device's stored key and newest event ts, as the batch's transaction sees it.
public struct StoredDevice: Sendable, Hashable {
    public var id: Int64
    /// Newest event ts of any reading stored for the device; `nil` before its first.
    public var maxTs: Int64?

    public init(id: Int64, maxTs: Int64?) {
        self.id = id
        self.maxTs = maxTs
    }
}

/// The keys of a batch's devices and series, loaded (and created where new) by the store,
/// in the plan's order.
public struct BatchKeys: Sendable {
    /// One per `plan.devices`, same order.
    public var devices: [StoredDevice]
    /// One per `plan.series`, same order.
    public var series: [Int64]

    public init(devices: [StoredDevice] = [], series: [Int64] = []) {
        self.devices = devices
        self.series = series
    }
}

/// The identity of a stored raw reading: series and event ts.
public struct RawKey: Hashable, Sendable {
    public var seriesID: Int64
    public var ts: Int64

    public init(seriesID: Int64, ts: Int64) {
        self.seriesID = seriesID
        self.ts = ts
    }
}

/// A raw reading to insert (its identity was checked: it is new).
public struct RawRow: Sendable, Hashable {
    public var deviceID: Int64
    public var seriesID: Int64
    public var ts: Int64
    public var value: Double
    /// False for a late reading dropped by policy: kept only so a resend is recognised.
    public var applied: Bool
}

/// A window's new value, and whether it is stored yet.
public struct WindowWrite: Sendable, Hashable {
    public var deviceID: Int64
    public var key: WindowKey
    public var record: WindowRecord
    public var isNew: Bool
}

/// A device's new newest ts and last-seen time, and its counter increments.
public struct DeviceWrite: Sendable, Hashable {
    public var id: Int64
    public var maxTs: Int64?
    public var lastSeen: Int64
    public var delta: DeviceDelta
}

/// A late reading dropped by `late_policy: drop`, for the audit table.
public struct LateDropRow: Sendable, Hashable {
    public var deviceID: Int64
    public var seriesID: Int64
    public var ts: Int64
    public var value: Double
    public var watermark: Int64
}

/// A drop-ledger row from the edge, not stored before.
public struct EdgeDropRow: Sendable, Hashable {
    public var deviceID: Int64
    /// The row's index in the batch's `drops` (with gateway and batch, its identity).
    public var index: Int
    public var drop: DropRecord
}

/// Everything one batch changes, decided by ``Reconciler``; the store writes it in the
/// transaction it loaded the state in.
public struct BatchChanges: Sendable {
    public var gateway: String
    public var receivedAt: Int64
    /// The `200` answer; `outcome.rejected` are the rows for the `rejected` table.
    public var outcome: BatchOutcome
    public var raw: [RawRow] = []
    public var windows: [WindowWrite] = []
    public var devices: [DeviceWrite] = []
    public var lateDrops: [LateDropRow] = []
    public var edgeDrops: [EdgeDropRow] = []
    /// Drop-ledger rows the gateway may not write, for the `rejected` table (index `-1 - row`).
    public var rejectedDrops: [RejectedReading] = []

    /// Every row for the `rejected` table: refused readings, then refused drop-ledger rows.
    public var rejectedRows: [RejectedReading] { outcome.rejected + rejectedDrops }
}
