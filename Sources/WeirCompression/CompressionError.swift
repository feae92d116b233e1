/// Compression or decompression failed: a ``Code`` for callers that branch on it (the
/// cloud answers 413 for ``Code/tooLarge`` and 400 for the rest), and a message that
/// says why.
///
/// ```swift
/// do { body = try Zstd.decompress(raw, maxSize: cap) }
/// catch let error as CompressionError where error.code == .tooLarge { /* 413 */ }
/// ```
public struct CompressionError: Error, Sendable, CustomStringConvertible, Hashable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The output would be larger than the caller's cap (a zip bomb, or simply too big).
        public static let tooLarge = Code("too large")
        /// The stream is damaged.
        public static let damaged = Code("damaged")
        /// The stream ends before its frame does.
        public static let truncated = Code("truncated")
        /// The bytes are not in the expected format at all (not a zstd frame, not a batch).
        public static let wrongFormat = Code("wrong format")
        /// The library failed (out of memory, a failed init).
        public static let library = Code("library failure")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
