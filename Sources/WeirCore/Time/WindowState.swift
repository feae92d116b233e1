/// Whether a window is still `open` or `closed`: closed once its device's watermark
/// (``Watermark``) has reached the window's end. A reading for a closed window is late.
///
/// ```swift
/// WindowState(end: 60_000, watermark: 59_999)   // .open
/// WindowState(end: 60_000, watermark: 60_000)   // .closed
/// WindowState(end: 60_000, watermark: nil)      // .open: the device has no readings yet
/// ```
public enum WindowState: String, Sendable, Hashable, Codable {
    case open
    case closed

    /// The state of the window ending at `end` (exclusive) under its device's `watermark`.
    @inlinable
    public init(end: Int64, watermark: Int64?) {
        self = watermark.map { Self.isClosed(end: end, watermark: $0) } ?? false ? .closed : .open
    }

    /// Whether the window ending at `end` (exclusive) is closed under `watermark`.
    @inlinable
    public static func isClosed(end: Int64, watermark: Int64) -> Bool {
        end <= watermark
    }
}
