import WeirCore

/// The reconciliation rules of a cloud configuration, in milliseconds.
public struct ReconcileSettings: Sendable, Equatable {
    public var windowSizesMs: [Int64]
    public var maxOutOfOrderMs: Int64
    public var latePolicy: CloudConfiguration.LatePolicy
    public var allowedLatenessMs: Int64
    public var rawRetentionMs: Int64

    public init(_ config: CloudConfiguration) {
        windowSizesMs = config.windowSizesMs
        maxOutOfOrderMs = config.maxOutOfOrder.milliseconds
        latePolicy = config.latePolicy
        allowedLatenessMs = config.allowedLateness.milliseconds
        rawRetentionMs = config.rawRetention.milliseconds
    }
}
