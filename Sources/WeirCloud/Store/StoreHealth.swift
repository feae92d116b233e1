import Foundation

/// What `GET /healthz` says about a store: whether it can commit batches and keeps its
/// write-back log folded.
///
/// ```swift
/// let health = store.health()
/// health.isHealthy   // false → 503 {"status": "failing", "since": ..., "reason": "..."}
/// ```
public struct StoreHealth: Sendable, Equatable, Codable {
    /// `ok`, `failing` (the last batch commit failed) or `fold_behind` (the write-back log
    /// could not be folded into the window tables for too long or too many batches).
    public var status: String
    /// Epoch ms since when the store is in this state (`nil` for `ok`).
    public var since: Int64?
    /// What went wrong, in words an operator can act on (`nil` for `ok`).
    public var reason: String?
    /// Batches committed to the write-back log and not yet folded.
    public var unfoldedBatches: Int
    /// Epoch ms of the last committed batch, if any since the store was opened.
    public var lastCommit: Int64?

    public var isHealthy: Bool { status == "ok" }

    public init(status: String, since: Int64? = nil, reason: String? = nil, unfoldedBatches: Int = 0, lastCommit: Int64? = nil) {
        self.status = status
        self.since = since
        self.reason = reason
        self.unfoldedBatches = unfoldedBatches
        self.lastCommit = lastCommit
    }

    enum CodingKeys: String, CodingKey {
        case status, since, reason
        case unfoldedBatches = "unfolded_batches"
        case lastCommit = "last_commit"
    }
}

/// The store's record of its own commits and folds, from which ``StoreHealth`` is judged.
/// Kept apart from the writer's state so `/healthz` never waits for a commit in progress.
struct StoreHealthRecord: Sendable {
    /// A fold is behind when this many batches wait in the log (normally at most one
    /// fold interval), or when the oldest of them waits longer than `maxUnfoldedAge`.
    var maxUnfoldedBatches: Int
    var maxUnfoldedAgeMs: Int64

    var failingSince: Int64?
    var failure: String?
    var foldFailingSince: Int64?
    var foldFailure: String?
    var unfoldedBatches = 0
    /// When the oldest batch not yet folded was committed (or the store opened with it).
    var unfoldedSince: Int64?
    var lastCommit: Int64?

    mutating func committed(at now: Int64, unfoldedBatches: Int) {
        failingSince = nil
        failure = nil
        lastCommit = now
        self.unfoldedBatches = unfoldedBatches
        if unfoldedBatches == 0 {
            unfoldedSince = nil
        } else if unfoldedSince == nil {
            unfoldedSince = now
        }
    }

    mutating func commitFailed(at now: Int64, _ error: any Error) {
        if failingSince == nil { failingSince = now }
        failure = "committing to the store failed: \(Self.describe(error))"
    }

    mutating func folded() {
        foldFailingSince = nil
        foldFailure = nil
    }

    mutating func foldFailed(at now: Int64, _ error: any Error) {
        if foldFailingSince == nil { foldFailingSince = now }
        foldFailure = "folding the write-back log into the window tables failed: \(Self.describe(error))"
    }

    func health(now: Int64) -> StoreHealth {
        if let failingSince, let failure {
            return StoreHealth(status: "failing", since: failingSince, reason: failure, unfoldedBatches: unfoldedBatches, lastCommit: lastCommit)
        }
        if let foldFailingSince, let foldFailure {
            return StoreHealth(status: "fold_behind", since: foldFailingSince,
                               reason: "\(foldFailure); \(unfoldedBatches) batches wait in the log",
                               unfoldedBatches: unfoldedBatches, lastCommit: lastCommit)
        }
        if let unfoldedSince, unfoldedBatches > maxUnfoldedBatches || now - unfoldedSince > maxUnfoldedAgeMs {
            return StoreHealth(status: "fold_behind", since: unfoldedSince,
                               reason: "\(unfoldedBatches) batches not folded into the window tables for \((now - unfoldedSince) / 1000) s (limits: \(maxUnfoldedBatches) batches, \(maxUnfoldedAgeMs / 1000) s)",
                               unfoldedBatches: unfoldedBatches, lastCommit: lastCommit)
        }
        return StoreHealth(status: "ok", unfoldedBatches: unfoldedBatches, lastCommit: lastCommit)
    }

    /// An error's text, short enough for a health answer.
    static func describe(_ error: any Error) -> String {
        String("\(error)".prefix(300))
    }
}
