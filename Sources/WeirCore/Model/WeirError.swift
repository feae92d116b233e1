/// An error a user can act on: what went wrong, where, and the cause if there is one.
/// `description` is safe to log: it carries no tokens and no payload beyond a short prefix.
public struct WeirError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure, for callers that branch on it.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let badConfig = Code("bad config")
        public static let badInput = Code("bad input")
        public static let badArgument = Code("bad argument")
        public static let storage = Code("storage")
        public static let damagedFile = Code("damaged file")
        public static let network = Code("network")
        public static let unauthorized = Code("unauthorized")
        public static let `internal` = Code("internal")
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(code): \(message) (\(cause))" }
        return "\(code): \(message)"
    }
}
