import WeirCore

/// One entry of the changefeed (`GET /v1/changes`): a window's new value after a commit,
/// in commit order. Applying every change as an upsert keyed by
/// `(device, metric, size_ms, start)` gives the windows table; a window that closes because
/// its device's watermark passed its end appears again with `state: closed`.
public struct WindowChange: Sendable, Hashable {
    /// Position in the feed: increases by one per change, stable across restarts.
    public var cursor: Int64
    public var device: String
    public var metric: String
    public var record: WindowRecord
    /// Whether the device's watermark had reached the window's end at this commit.
    public var closed: Bool
    /// Wall-clock time of the commit, epoch ms.
    public var committedAt: Int64

    public init(cursor: Int64, device: String, metric: String, record: WindowRecord, closed: Bool, committedAt: Int64) {
        self.cursor = cursor
        self.device = device
        self.metric = metric
        self.record = record
        self.closed = closed
        self.committedAt = committedAt
    }
}

/// What a changefeed read found.
public enum ChangeFeedPage: Sendable {
    /// Changes after the cursor (at most the limit), and the cursor to ask after next.
    case changes([WindowChange], next: Int64)
    /// The cursor is older than what is kept; `oldest` is the first cursor still available.
    case gone(oldest: Int64)
}

/// A store that keeps a changefeed of window changes.
public protocol ChangeFeedSource: Sendable {
    /// Up to `limit` changes with cursor > `after`, in commit order.
    func changes(after: Int64, limit: Int) async throws -> ChangeFeedPage
    /// Waits until a change with cursor > `after` is committed or `timeout` passes (returns
    /// at once if there is one already, or when the task is cancelled).
    func waitForChanges(after: Int64, timeout: Duration) async
    /// The cursor of the newest committed change (0 before the first).
    var latestCursor: Int64 { get }
}
