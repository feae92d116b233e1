/// A device's progress in event time (DESIGN.md, "Time"): the newest event ts seen for the
/// device minus `max_out_of_order`. A window is closed once its device's watermark has
/// reached its end (``WindowState``); the reconciler's doc comment says how lateness
/// follows from that. Every part of weir-cloud that needs a watermark computes it here.
///
/// ```swift
/// let watermark = Watermark.of(newestTs: 1_732_540_125_000, maxOutOfOrderMs: 5_000)
/// // 1_732_540_120_000: the window [.., 1_732_540_120_000) is closed, the next one open
/// ```
public enum Watermark {
    /// `newestTs − maxOutOfOrderMs`.
    @inlinable
    public static func of(newestTs: Int64, maxOutOfOrderMs: Int64) -> Int64 {
        newestTs - maxOutOfOrderMs
    }

    /// The newest event ts behind `watermark`: the inverse of ``of(newestTs:maxOutOfOrderMs:)``.
    @inlinable
    public static func newestTs(behind watermark: Int64, maxOutOfOrderMs: Int64) -> Int64 {
        watermark + maxOutOfOrderMs
    }
}
