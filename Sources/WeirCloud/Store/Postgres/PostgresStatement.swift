import PostgresNIO

/// One SQL statement assembled from parts, each value bound as a parameter (`$n`).
///
/// A batch's writes go to PostgreSQL as one statement of data-modifying `WITH` parts (one
/// round trip instead of one per table); the parts differ per batch, so the text is built
/// here rather than in one string literal.
struct PostgresStatement {
    private(set) var binds = PostgresBindings()

    /// The placeholder of `value`, bound as the next parameter.
    mutating func bind<Value: PostgresThrowingDynamicTypeEncodable>(_ value: Value) throws -> String {
        try binds.append(value)
        return "$\(binds.count)"
    }

    /// The statement `sql`, with the parameters bound so far.
    func query(_ sql: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}
