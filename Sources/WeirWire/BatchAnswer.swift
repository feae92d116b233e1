/// The `200` body of `POST /v1/batches` (DESIGN.md, "Edge → cloud wire format"): what the
/// cloud committed of the batch. weir-cloud writes it; the tests and benchmarks read it.
public struct BatchAnswer: Codable, Sendable, Hashable {
    /// A reading that was not applied: its index in the request and why.
    public struct Rejected: Codable, Sendable, Hashable {
        public var index: Int
        public var reason: String

        public init(index: Int, reason: String) {
            self.index = index
            self.reason = reason
        }
    }

    /// The batch id (the request's idempotency key).
    public var batch: String
    public var accepted: Int
    public var duplicates: Int
    public var late: Int
    public var conflicts: Int
    public var tooLate: Int
    public var droppedLate: Int
    public var rejected: [Rejected]
    /// Readings and drop-ledger rows of devices the gateway may not write (also in `rejected`).
    public var forbidden = 0

    public init(batch: String, accepted: Int, duplicates: Int, late: Int, conflicts: Int, tooLate: Int,
                droppedLate: Int, rejected: [Rejected], forbidden: Int = 0) {
        self.batch = batch
        self.accepted = accepted
        self.duplicates = duplicates
        self.late = late
        self.conflicts = conflicts
        self.tooLate = tooLate
        self.droppedLate = droppedLate
        self.rejected = rejected
        self.forbidden = forbidden
    }

    enum CodingKeys: String, CodingKey {
        case batch, accepted, duplicates, late, conflicts, rejected, forbidden
        case tooLate = "too_late"
        case droppedLate = "dropped_late"
    }
}
