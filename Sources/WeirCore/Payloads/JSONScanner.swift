/// Why a JSON text stopped making sense, and at which byte.
struct JSONSyntaxError: Error, CustomStringConvertible {
    var offset: Int
    var message: String
    var description: String { "byte \(offset): \(message)" }
}

/// A JSON number as written: exactly as an integer when it is one and fits in an Int64,
/// and as the nearest Double always.
struct JSONNumber {
    /// The value when the text had no fraction and no exponent and fits in an Int64.
    var integer: Int64?
    var double: Double
}

/// A small pull scanner over JSON bytes, the project's one JSON reader (the `json` and
/// `senml` payload decoders and `Batch.decodeJSON` use it): no Foundation,
/// no intermediate tree, exact integers (nanosecond timestamps have 19 digits, more than a
/// Double holds) and correctly rounded doubles. Every read checks bounds, so any byte
/// string gives values or a `JSONSyntaxError`, never a trap; nesting is limited to
/// `maxDepth` so hostile input cannot exhaust the stack.
struct JSONScanner: ~Copyable {
    /// Deepest nesting of arrays and objects accepted.
    static let maxDepth = 64

    let bytes: UnsafeBufferPointer<UInt8>
    var pos: Int = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { pos >= bytes.count }

    func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: pos, message: message)
    }

    /// Skips whitespace and returns the next byte without consuming it.
    @inline(__always)
    mutating func peek() -> UInt8? {
        while pos < bytes.count {
            let b = bytes[pos]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { pos += 1 } else { return b }
        }
        return nil
    }

    /// Consumes `byte` (after whitespace) or throws naming what was expected.
    @inline(__always)
    mutating func expect(_ byte: UInt8, _ what: @autoclosure () -> String) throws(JSONSyntaxError) {
        guard peek() == byte else {
            throw error("expected \(what())\(foundDescription())")
        }
        pos += 1
    }

    /// " but found 'x'" / " but the payload ends", for messages.
    func foundDescription() -> String {
        guard pos < bytes.count else { return " but the payload ends" }
        let b = bytes[pos]
        if b >= 0x20 && b < 0x7F { return " but found '\(Character(Unicode.Scalar(b)))'" }
        return " but found byte 0x\(String(b, radix: 16))"
    }

    /// Reads a string (the scanner is at its opening quote) and appends its decoded UTF-8
    /// bytes to `buffer`.
    mutating func appendString(to buffer: inout [UInt8]) throws(JSONSyntaxError) {
        guard peek() == UInt8(ascii: "\"") else { throw error("expected a string\(foundDescription())") }
        pos += 1
        var runStart = pos
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<pos]))
                pos += 1
                return
            }
            if b == UInt8(ascii: "\\") {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<pos]))
                try appendEscape(to: &buffer)
                runStart = pos
                continue
            }
            if b < 0x20 { throw error("control byte 0x\(String(b, radix: 16)) inside a string") }
            pos += 1
        }
        throw error("unterminated string")
    }

    /// Reads a string into a Swift `String`; one without escapes is made straight from
    /// the bytes, with no intermediate buffer.
    mutating func readString() throws(JSONSyntaxError) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw error("expected a string\(foundDescription())") }
        var end = pos + 1
        while end < bytes.count {
            let b = bytes[end]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[(pos + 1)..<end]), as: UTF8.self)
                pos = end + 1
                return s
            }
            if b == UInt8(ascii: "\\") || b < 0x20 { break }
            end += 1
        }
        var buffer: [UInt8] = []
        try appendString(to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Decodes one escape into `buffer` (the scanner is at its backslash).
    private mutating func appendEscape(to buffer: inout [UInt8]) throws(JSONSyntaxError) {
        let scalar = try readEscape()
        UTF8.encode(scalar) { buffer.append($0) }
    }

    /// Reads one escape (the scanner is at its backslash) and returns the scalar it stands
    /// for. `appendString` and `skipString` both go through here, so a skipped string is
    /// rejected for exactly what a read one is.
    private mutating func readEscape() throws(JSONSyntaxError) -> Unicode.Scalar {
        pos += 1 // the backslash
        guard pos < bytes.count else { throw error("unterminated escape") }
        let e = bytes[pos]
        pos += 1
        switch e {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            var scalar = try readHex4()
            if scalar >= 0xD800 && scalar < 0xDC00 {
                // A high surrogate must be followed by an escaped low surrogate.
                guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                    throw error("lone surrogate in \\u escape")
                }
                pos += 2
                let low = try readHex4()
                guard low >= 0xDC00 && low < 0xE000 else { throw error("lone surrogate in \\u escape") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if scalar >= 0xDC00 && scalar < 0xE000 {
                throw error("lone surrogate in \\u escape")
            }
            guard let s = Unicode.Scalar(scalar) else { throw error("bad \\u escape") }
            return s
        default:
            pos -= 1
            throw error("unknown escape '\\\(e >= 0x20 && e < 0x7F ? String(Character(Unicode.Scalar(e))) : "?")'")
        }
    }

    private mutating func readHex4() throws(JSONSyntaxError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - 55)
            default: throw error("bad hex digit in \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    /// Reads a number (the scanner is at its first byte).
    mutating func readNumber() throws(JSONSyntaxError) -> JSONNumber {
        _ = peek()
        let start = pos
        var negative = false
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "-") { negative = true; pos += 1 }
        var digits = DecimalText.Digits()
        var isInteger = true

        guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("expected a digit\(foundDescription())") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < bytes.count && isDigit(bytes[pos]) { throw error("number with a leading zero") }
        } else {
            while pos < bytes.count, isDigit(bytes[pos]) {
                digits.appendInteger(bytes[pos])
                pos += 1
            }
        }
        if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
            isInteger = false
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("expected a digit after the decimal point") }
            while pos < bytes.count, isDigit(bytes[pos]) {
                digits.appendFraction(bytes[pos])
                pos += 1
            }
        }
        if pos < bytes.count && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
            isInteger = false
            pos += 1
            var expNegative = false
            if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) {
                expNegative = bytes[pos] == UInt8(ascii: "-")
                pos += 1
            }
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("expected a digit in the exponent") }
            var e = 0
            while pos < bytes.count, isDigit(bytes[pos]) {
                if e < 100_000 { e = e * 10 + Int(bytes[pos] &- 48) }
                pos += 1
            }
            digits.exponent += expNegative ? -e : e
        }

        if isInteger && !digits.truncated && digits.exponent == 0 {
            let mantissa = digits.mantissa
            if negative {
                if mantissa <= UInt64(Int64.max) + 1 {
                    let v = mantissa == UInt64(Int64.max) + 1 ? Int64.min : -Int64(mantissa)
                    return JSONNumber(integer: v, double: Double(v))
                }
            } else if mantissa <= UInt64(Int64.max) {
                let v = Int64(mantissa)
                return JSONNumber(integer: v, double: Double(v))
            }
        }
        if let d = digits.fastDouble {
            return JSONNumber(integer: nil, double: negative ? -d : d)
        }
        // The rare rest: let the standard library's correctly rounded parser do it.
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        let d = Double(text) ?? (negative ? -.infinity : .infinity)
        return JSONNumber(integer: nil, double: d)
    }

    @inline(__always)
    func isDigit(_ b: UInt8) -> Bool { b &- 48 < 10 }

    /// Reads `true`, `false` or `null` (the scanner is at its first byte).
    mutating func readLiteral() throws(JSONSyntaxError) -> Bool? {
        func matches(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard pos + n <= bytes.count else { return false }
            let p = word.utf8Start
            for i in 0..<n where bytes[pos + i] != p[i] { return false }
            return true
        }
        _ = peek()
        if matches("true") { pos += 4; return true }
        if matches("false") { pos += 5; return false }
        if matches("null") { pos += 4; return nil }
        throw error("expected a value\(foundDescription())")
    }

    /// Skips one value of any kind, checking its syntax.
    mutating func skipValue(depth: Int) throws(JSONSyntaxError) {
        guard let b = peek() else { throw error("expected a value but the payload ends") }
        switch b {
        case UInt8(ascii: "\""):
            try skipString()
        case UInt8(ascii: "{"):
            guard depth < JSONScanner.maxDepth else { throw error("nested deeper than \(JSONScanner.maxDepth) levels") }
            pos += 1
            if peek() == UInt8(ascii: "}") { pos += 1; return }
            while true {
                try skipString()
                try expect(UInt8(ascii: ":"), "':' after a key")
                try skipValue(depth: depth + 1)
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "}"), "',' or '}' in an object")
                return
            }
        case UInt8(ascii: "["):
            guard depth < JSONScanner.maxDepth else { throw error("nested deeper than \(JSONScanner.maxDepth) levels") }
            pos += 1
            if peek() == UInt8(ascii: "]") { pos += 1; return }
            while true {
                try skipValue(depth: depth + 1)
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                try expect(UInt8(ascii: "]"), "',' or ']' in an array")
                return
            }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            _ = try readNumber()
        default:
            _ = try readLiteral()
        }
    }

    /// Skips a string without decoding it, rejecting what `appendString` rejects: unknown
    /// escapes, `\u` without four hex digits, lone surrogates and raw control bytes.
    /// A plain byte costs three comparisons; escapes are checked by `readEscape`.
    mutating func skipString() throws(JSONSyntaxError) {
        guard peek() == UInt8(ascii: "\"") else { throw error("expected a string\(foundDescription())") }
        // A local index, not `pos`: with the escape call in the loop the compiler otherwise
        // stores and reloads `pos` on every byte (a 2 KB plain value skipped at 1.6 instead
        // of 2.2 GB/s).
        var i = pos + 1
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { pos = i + 1; return }
            if b == UInt8(ascii: "\\") {
                pos = i
                _ = try readEscape()
                i = pos
                continue
            }
            if b < 0x20 {
                pos = i
                throw error("control byte 0x\(String(b, radix: 16)) inside a string")
            }
            i += 1
        }
        pos = i
        throw error("unterminated string")
    }

    /// Steps through an array: with `index` 0 the scanner is at `[`, otherwise just after
    /// element `index - 1`. Returns `true` at the next element (after whitespace) and
    /// `false` once past the closing `]`; `what` names the array in errors.
    mutating func nextElement(_ index: Int, in what: @autoclosure () -> String) throws(JSONSyntaxError) -> Bool {
        if index == 0 {
            pos += 1 // the "["
            if peek() == UInt8(ascii: "]") { pos += 1; return false }
            return true
        }
        if peek() == UInt8(ascii: ",") { pos += 1; return true }
        try expect(UInt8(ascii: "]"), "',' or ']' in \(what())")
        return false
    }

    /// Throws unless only whitespace is left.
    mutating func expectEnd() throws(JSONSyntaxError) {
        if peek() != nil { throw error("unexpected data after the JSON value") }
    }
}
