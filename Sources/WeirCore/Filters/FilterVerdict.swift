/// What `FilterChain.apply` decided for one reading.
public enum FilterVerdict: Sendable, Hashable {
    /// Keep it (forward this reading).
    case pass(Reading)
    /// A downsample stage took it into a bucket; the bucket's aggregate comes out of
    /// `flushDue(now:)` or `flushAll()` later. Not a loss.
    case held
    /// Removed on purpose; count it under `reason`.
    case dropped(reason: FilterReason)
    /// Out of range: bad data, for the dead-letter table with `reason`.
    case deadLetter(reason: String)
}

/// Why a filter removed a reading (the label of the drop counters).
public enum FilterReason: String, Sendable, Hashable, CaseIterable {
    /// Its identity was seen within the dedup window.
    case dedup
    /// It moved less than the deadband and no heartbeat was due.
    case deadband
    /// Its device was over the rate limit.
    case rateLimit = "rate_limit"
    /// It belonged to a downsample bucket that had already been emitted (arrived too late).
    case downsample
}
