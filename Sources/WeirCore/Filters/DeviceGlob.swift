/// A device-name pattern of an access rule (a gateway's or a reader's `devices:`): `*`
/// matches any run of characters, `?` exactly one, everything else itself.
///
/// ```swift
/// let glob = try DeviceGlob("plant-a-*")
/// glob.matches("plant-a-7")   // true
/// glob.matches("plant-b-1")   // false
/// ```
public struct DeviceGlob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    private let bytes: [UInt8]

    /// Parses a pattern; throws when it is empty or holds characters no device name can have.
    public init(_ pattern: String) throws(WeirError) {
        let source = Array(pattern.utf8)
        guard !source.isEmpty else { throw WeirError(.badConfig, "device pattern is empty (write e.g. \"plant-a-*\" or \"*\")") }
        for b in source where !(Reading.isNameByte(b) || b == UInt8(ascii: "*") || b == UInt8(ascii: "?")) {
            let shown = b >= 0x20 && b < 0x7F ? String(Character(Unicode.Scalar(b))) : "byte 0x\(String(b, radix: 16))"
            throw WeirError(.badConfig, "device pattern '\(pattern.prefix(80))' contains '\(shown)' (names are [A-Za-z0-9_.:/-], patterns add * and ?)")
        }
        self.pattern = pattern
        self.bytes = source
    }

    /// The pattern as written.
    public var description: String { pattern }

    /// Whether `device` matches the pattern as a whole.
    public func matches(_ device: String) -> Bool {
        NameGlob.match(bytes, Array(device.utf8))
    }
}
