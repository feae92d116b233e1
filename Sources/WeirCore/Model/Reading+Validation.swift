/// Why a reading breaks the data model. `description` names the field and the problem.
public enum ReadingProblem: Error, Hashable, Sendable, CustomStringConvertible {
    case emptyName(field: String)
    case nameTooLong(field: String, bytes: Int)
    case badNameCharacter(field: String, character: Character)
    case nonFiniteValue(Double)

    public var description: String {
        switch self {
        case .emptyName(let field):
            return "\(field) is empty (1–128 bytes of [A-Za-z0-9_.:/-] expected)"
        case .nameTooLong(let field, let bytes):
            return "\(field) is \(bytes) bytes long (at most 128)"
        case .badNameCharacter(let field, let character):
            let shown = character.unicodeScalars.map { s in
                s.isASCII && s.value >= 0x20 && s.value < 0x7F ? String(s) : "U+\(String(s.value, radix: 16, uppercase: true))"
            }.joined()
            return "\(field) contains '\(shown)' (only [A-Za-z0-9_.:/-] allowed)"
        case .nonFiniteValue(let value):
            return "value is \(value) (a finite number expected)"
        }
    }
}

extension Reading {
    /// The longest device or metric name, in bytes.
    public static let maxNameBytes = 128

    /// Checks the reading against the data model; throws the first problem found.
    public func validate() throws(ReadingProblem) {
        try Reading.validateName(device, field: "device")
        try Reading.validateName(metric, field: "metric")
        guard value.isFinite else { throw .nonFiniteValue(value) }
    }

    /// The problem with this reading, or `nil` when it is valid.
    public var problem: ReadingProblem? {
        do { try validate(); return nil } catch { return error }
    }

    /// Checks one device or metric name: 1–128 bytes of `[A-Za-z0-9_.:/-]`.
    public static func validateName(_ name: String, field: String) throws(ReadingProblem) {
        var count = 0
        for byte in name.utf8 {
            count += 1
            guard isNameByte(byte) else {
                // Report the whole character, not a stray UTF-8 byte.
                let bad = name.first { c in c.utf8.contains { !isNameByte($0) } } ?? "?"
                throw .badNameCharacter(field: field, character: bad)
            }
        }
        if count == 0 { throw .emptyName(field: field) }
        if count > maxNameBytes { throw .nameTooLong(field: field, bytes: count) }
    }

    /// Whether `byte` may appear in a device or metric name.
    @inlinable
    public static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}
