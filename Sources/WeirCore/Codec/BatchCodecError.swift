/// Why a byte string is not a valid encoded batch, and where: `offset` is the byte at
/// which decoding stopped. `description` is safe to log (it never echoes the payload).
public struct BatchCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure, for callers that branch on it.
    public enum Code: String, Hashable, Sendable {
        /// The input does not start with the batch magic (`WEIR`).
        case notABatch = "not a Weir batch"
        /// A version this decoder does not read.
        case unsupportedVersion = "unsupported version"
        /// The input ends before the structure it announces.
        case truncated = "truncated"
        /// The trailing CRC-32C does not match the bytes.
        case checksumMismatch = "checksum mismatch"
        /// The bytes are complete and the checksum matches, but the structure is invalid.
        case malformed = "malformed"
    }

    public var code: Code
    /// Byte offset in the encoded input where the problem was found.
    public var offset: Int
    /// What exactly is wrong, in words.
    public var message: String

    public init(_ code: Code, at offset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    public var description: String {
        "batch codec: \(code.rawValue) at byte \(offset): \(message)"
    }
}
