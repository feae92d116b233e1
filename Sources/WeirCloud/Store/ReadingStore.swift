import WeirCore

/// Where weir-cloud keeps readings and windows. The SQLite store is the embedded
/// default; a PostgreSQL store implements the same protocol for scale-out. Stores only
/// run SQL: what a batch means is decided by ``Reconciler`` through a ``ReconcileSession``.
public protocol ReadingStore: Sendable {
    /// Applies one batch in one transaction and returns its outcome after the commit.
    func apply(_ batch: DecodedBatch, receivedAt: Int64) async throws -> BatchOutcome
    /// Every device with its counters, sorted by name.
    func devices() async throws -> [DeviceSummary]
    /// One device's summary, or `nil` if it never sent a reading.
    func device(named name: String) async throws -> DeviceSummary?
    /// Windows of one series and size with `start` in `[from, to)`, ascending; `nil` when
    /// the device is unknown.
    func windows(device: String, metric: String, sizeMs: Int64, from: Int64, to: Int64) async throws -> [WindowRecord]?
    /// Deletes raw readings older than `raw_retention` behind their device's newest
    /// reading; returns how many were deleted.
    func pruneRaw() async throws -> Int
    /// Whether the store can commit batches and keeps up with its own maintenance (for
    /// `GET /healthz`); cheap, and never waits for a commit in progress.
    func health() -> StoreHealth
    /// Closes the store; later calls fail.
    func close() async throws
}

/// Which store a `--store` URL names.
public enum StoreLocation: Sendable, Equatable {
    /// `sqlite:PATH`.
    case sqlite(path: String)
    /// `postgres://user@host:port/database` (``PostgresReadingStore``).
    case postgres(url: String)

    /// Parses `sqlite:PATH` or `postgres://...`.
    public static func parse(_ text: String) throws(WeirError) -> StoreLocation {
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw WeirError(.badConfig, "store 'sqlite:' needs a path, e.g. sqlite:./weir-cloud.db") }
            return .sqlite(path: path)
        }
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            return .postgres(url: text)
        }
        throw WeirError(.badConfig, "store '\(text.prefix(80))' is not sqlite:PATH or postgres://...")
    }
}
