/// The JSON form of a batch (DESIGN.md, "Edge → cloud wire format"):
///
/// ```json
/// {"gateway": "gw-1", "batch": "gw-1:000042",
///  "readings": [{"device": "d1", "metric": "temp", "ts": 1732540000123, "value": 21.5}],
///  "drops": [{"device": "d1", "metric": "temp", "from": 1732540000000, "to": 1732540009000, "count": 12}]}
/// ```
///
/// Decoding is lenient per reading and strict about everything else: each reading is
/// checked on its own, so a batch with some bad readings yields the good ones plus the
/// index and reason of each bad one; a body that is not such a batch at all (not JSON,
/// wrong shape, missing `gateway` or `batch`, a malformed drop row) is an error naming the
/// problem and where it is.
///
/// ```swift
/// let bytes = batch.jsonBytes()
/// let decoded = try Batch.decodeJSON(bytes)
/// decoded.batch.readings      // the valid readings, in order
/// decoded.rejected            // [(index, reason)] for the invalid ones
/// ```
extension Batch {
    /// The batch as compact JSON. Non-finite values (which JSON cannot carry) are written
    /// as `null`, which a decoder reports as an invalid reading.
    public func jsonBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + readings.count * 72)
        out.append(contentsOf: #"{"gateway":"#.utf8)
        BatchJSON.appendString(gateway, to: &out)
        out.append(contentsOf: #","batch":"#.utf8)
        BatchJSON.appendString(id, to: &out)
        out.append(contentsOf: #","readings":["#.utf8)
        for (i, r) in readings.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"device":"#.utf8)
            BatchJSON.appendString(r.device, to: &out)
            out.append(contentsOf: #","metric":"#.utf8)
            BatchJSON.appendString(r.metric, to: &out)
            out.append(contentsOf: #","ts":"#.utf8)
            out.append(contentsOf: String(r.ts).utf8)
            out.append(contentsOf: #","value":"#.utf8)
            BatchJSON.appendDouble(r.value, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        if !drops.isEmpty {
            out.append(contentsOf: #","drops":["#.utf8)
            for (i, d) in drops.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"device":"#.utf8)
                BatchJSON.appendString(d.device, to: &out)
                out.append(contentsOf: #","metric":"#.utf8)
                BatchJSON.appendString(d.metric, to: &out)
                out.append(contentsOf: #","from":\#(d.from),"to":\#(d.to),"count":\#(d.count)}"#.utf8)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Decodes a JSON batch leniently (see the type's notes). Throws a ``WeirError`` with
    /// code `.badInput` when the body is not a batch at all.
    public static func decodeJSON(_ bytes: some Collection<UInt8>) throws(WeirError) -> DecodedBatch {
        let buffer = Array(bytes)
        var parser = BatchJSON.Parser(bytes: buffer)
        do {
            return try parser.parseBatch()
        } catch {
            throw WeirError(.badInput, "body is not a JSON batch: \(error.message)")
        }
    }
}

/// A decoded batch: the valid readings (and drops) plus what was wrong with the rest.
public struct DecodedBatch: Sendable, Hashable {
    /// The batch with only its valid readings.
    public var batch: Batch
    /// The readings that break the data model, by their index in the body's `readings`.
    public var rejected: [RejectedReading]
    /// How many readings the body held, valid or not.
    public var readingCount: Int

    public init(batch: Batch, rejected: [RejectedReading] = [], readingCount: Int? = nil) {
        self.batch = batch
        self.rejected = rejected
        self.readingCount = readingCount ?? (batch.readings.count + rejected.count)
    }
}

/// One reading of a batch that could not be accepted: its index in the batch, why, and
/// what could be read of it (for the rejected table).
public struct RejectedReading: Sendable, Hashable, Codable {
    /// Position in the batch's `readings` (0-based).
    public var index: Int
    /// What is wrong, in words.
    public var reason: String
    /// The reading's text (at most the first 256 bytes), or its fields re-encoded.
    public var raw: String

    public init(index: Int, reason: String, raw: String) {
        self.index = index
        self.reason = reason
        self.raw = raw
    }
}

/// The hand-written JSON reader and writer behind `Batch.jsonBytes` / `Batch.decodeJSON`.
/// Hand-written because a batch holds thousands of readings and the generic decoders
/// either stop at the first bad reading or cost several times more per reading.
enum BatchJSON {
    struct SyntaxError: Error {
        var message: String
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    static func appendDouble(_ v: Double, to out: inout [UInt8]) {
        guard v.isFinite else {
            out.append(contentsOf: "null".utf8)
            return
        }
        if v == v.rounded(), abs(v) < 1e15 {
            out.append(contentsOf: String(Int64(v)).utf8)
        } else {
            // Swift's description is the shortest text that reads back to the same Double,
            // and its exponent form (`1e-05`) is valid JSON.
            out.append(contentsOf: v.description.utf8)
        }
    }

    /// One parsed scalar field of a reading or drop.
    enum Scalar {
        case string(String)
        case number(integer: Int64?, double: Double)
        case bool(Bool)
        case null
        case composite(String)  // an object or array where a scalar was expected

        var kind: String {
            switch self {
            case .string: return "a string"
            case .number: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            case .composite(let what): return what
            }
        }
    }

    struct Parser {
        let bytes: [UInt8]
        var pos = 0
        static let maxDepth = 64

        init(bytes: [UInt8]) { self.bytes = bytes }

        // MARK: Batch shape

        mutating func parseBatch() throws(SyntaxError) -> DecodedBatch {
            skipWhitespace()
            guard pos < bytes.count else { throw SyntaxError(message: "the body is empty") }
            guard bytes[pos] == UInt8(ascii: "{") else {
                throw SyntaxError(message: "expected a JSON object at byte 0, found \(describeHere())")
            }
            var gateway: String?
            var id: String?
            var readings: [Reading] = []
            var rejected: [RejectedReading] = []
            var readingCount = 0
            var drops: [DropRecord] = []
            var sawReadings = false
            try parseObject { (parser, key) throws(SyntaxError) in
                switch key {
                case "gateway":
                    guard case .string(let s) = try parser.parseScalar() else {
                        throw SyntaxError(message: "\"gateway\" must be a string")
                    }
                    gateway = s
                case "batch":
                    guard case .string(let s) = try parser.parseScalar() else {
                        throw SyntaxError(message: "\"batch\" must be a string")
                    }
                    id = s
                case "readings":
                    sawReadings = true
                    try parser.parseArray(field: "readings") { (parser, index) throws(SyntaxError) in
                        readingCount += 1
                        let start = parser.pos
                        switch try parser.parseReading() {
                        case .success(let reading): readings.append(reading)
                        case .failure(let problem):
                            let end = min(parser.pos, start + 256)
                            let raw = String(decoding: parser.bytes[start..<end], as: UTF8.self)
                            rejected.append(RejectedReading(index: index, reason: problem.message, raw: raw))
                        }
                    }
                case "drops":
                    try parser.parseArray(field: "drops") { (parser, index) throws(SyntaxError) in
                        drops.append(try parser.parseDrop(index: index))
                    }
                default:
                    try parser.skipValue(depth: 1)
                }
            }
            skipWhitespace()
            guard pos == bytes.count else {
                throw SyntaxError(message: "unexpected \(describeHere()) at byte \(pos) after the batch object")
            }
            guard let gateway else { throw SyntaxError(message: "\"gateway\" is missing") }
            guard !gateway.isEmpty, gateway.utf8.count <= 128 else {
                throw SyntaxError(message: "\"gateway\" must be 1–128 bytes")
            }
            guard let id else { throw SyntaxError(message: "\"batch\" (the idempotency key) is missing") }
            guard !id.isEmpty, id.utf8.count <= 256 else {
                throw SyntaxError(message: "\"batch\" must be 1–256 bytes")
            }
            guard sawReadings else { throw SyntaxError(message: "\"readings\" is missing") }
            return DecodedBatch(batch: Batch(gateway: gateway, id: id, readings: readings, drops: drops),
                                rejected: rejected, readingCount: readingCount)
        }

        /// Parses one reading object. Syntax errors throw (the body is broken); problems
        /// with the reading's content come back as `.failure`.
        mutating func parseReading() throws(SyntaxError) -> Result<Reading, SyntaxError> {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "{") else {
                let what = describeHere()
                try skipValue(depth: 2)
                return .failure(SyntaxError(message: "a reading must be an object, found \(what)"))
            }
            var device: Scalar?
            var metric: Scalar?
            var ts: Scalar?
            var value: Scalar?
            try parseObject { (parser, key) throws(SyntaxError) in
                switch key {
                case "device": device = try parser.parseScalar()
                case "metric": metric = try parser.parseScalar()
                case "ts": ts = try parser.parseScalar()
                case "value": value = try parser.parseScalar()
                default: try parser.skipValue(depth: 3)
                }
            }
            func fail(_ m: String) -> Result<Reading, SyntaxError> { .failure(SyntaxError(message: m)) }
            guard let device else { return fail("device is missing") }
            guard case .string(let deviceName) = device else { return fail("device must be a string, not \(device.kind)") }
            guard let metric else { return fail("metric is missing") }
            guard case .string(let metricName) = metric else { return fail("metric must be a string, not \(metric.kind)") }
            guard let ts else { return fail("ts is missing") }
            let tsValue: Int64
            switch ts {
            case .number(let integer?, _): tsValue = integer
            case .number(nil, let d):
                guard d.isFinite, d == d.rounded(), abs(d) < 9.2e18 else {
                    return fail("ts is \(d) (whole milliseconds since the epoch expected)")
                }
                tsValue = Int64(d)
            default: return fail("ts must be a number of milliseconds since the epoch, not \(ts.kind)")
            }
            guard let value else { return fail("value is missing") }
            let number: Double
            switch value {
            case .number(_, let d): number = d
            case .bool(let b): number = b ? 1 : 0
            default: return fail("value must be a number or boolean, not \(value.kind)")
            }
            let reading = Reading(device: deviceName, metric: metricName, ts: tsValue, value: number)
            if let problem = reading.problem { return fail(problem.description) }
            return .success(reading)
        }

        mutating func parseDrop(index: Int) throws(SyntaxError) -> DropRecord {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "{") else {
                throw SyntaxError(message: "drops[\(index)] must be an object, found \(describeHere())")
            }
            var fields: [String: Scalar] = [:]
            try parseObject { (parser, key) throws(SyntaxError) in
                fields[key] = try parser.parseScalar()
            }
            func name(_ key: String) throws(SyntaxError) -> String {
                guard case .string(let s)? = fields[key] else {
                    throw SyntaxError(message: "drops[\(index)].\(key) must be a string")
                }
                do { try Reading.validateName(s, field: key) } catch {
                    throw SyntaxError(message: "drops[\(index)]: \(error)")
                }
                return s
            }
            func integer(_ key: String) throws(SyntaxError) -> Int64 {
                guard case .number(let i?, _)? = fields[key] else {
                    throw SyntaxError(message: "drops[\(index)].\(key) must be a whole number")
                }
                return i
            }
            let record = DropRecord(device: try name("device"), metric: try name("metric"),
                                    from: try integer("from"), to: try integer("to"), count: try integer("count"))
            guard record.count >= 0 else { throw SyntaxError(message: "drops[\(index)].count is negative") }
            guard record.from <= record.to else { throw SyntaxError(message: "drops[\(index)]: from is after to") }
            return record
        }

        // MARK: Generic JSON

        mutating func parseObject(_ body: (inout Parser, String) throws(SyntaxError) -> Void) throws(SyntaxError) {
            pos += 1  // "{"
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return }
            while true {
                skipWhitespace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                    throw SyntaxError(message: "expected a quoted key at byte \(pos), found \(describeHere())")
                }
                let key = try parseString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':' after key \"\(key.prefix(40))\"")
                skipWhitespace()
                try body(&self, key)
                skipWhitespace()
                guard pos < bytes.count else { throw SyntaxError(message: "the body ends at byte \(pos) inside an object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return }
                throw SyntaxError(message: "expected ',' or '}' at byte \(pos), found \(describeHere())")
            }
        }

        mutating func parseArray(field: String, _ element: (inout Parser, Int) throws(SyntaxError) -> Void) throws(SyntaxError) {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "[") else {
                throw SyntaxError(message: "\"\(field)\" must be an array, found \(describeHere())")
            }
            pos += 1
            skipWhitespace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return }
            var index = 0
            while true {
                try element(&self, index)
                index += 1
                skipWhitespace()
                guard pos < bytes.count else { throw SyntaxError(message: "the body ends at byte \(pos) inside \"\(field)\"") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; skipWhitespace(); continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return }
                throw SyntaxError(message: "expected ',' or ']' in \"\(field)\" at byte \(pos), found \(describeHere())")
            }
        }

        mutating func parseScalar() throws(SyntaxError) -> Scalar {
            skipWhitespace()
            guard pos < bytes.count else { throw SyntaxError(message: "the body ends at byte \(pos) where a value was expected") }
            switch bytes[pos] {
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "{"): try skipValue(depth: 4); return .composite("an object")
            case UInt8(ascii: "["): try skipValue(depth: 4); return .composite("an array")
            default: return try parseNumber()
            }
        }

        mutating func skipValue(depth: Int) throws(SyntaxError) {
            guard depth < Self.maxDepth else { throw SyntaxError(message: "JSON nested too deeply at byte \(pos)") }
            skipWhitespace()
            guard pos < bytes.count else { throw SyntaxError(message: "the body ends at byte \(pos) where a value was expected") }
            switch bytes[pos] {
            case UInt8(ascii: "{"):
                try parseObject { (parser, _) throws(SyntaxError) in try parser.skipValue(depth: depth + 1) }
            case UInt8(ascii: "["):
                try parseArray(field: "array") { (parser, _) throws(SyntaxError) in try parser.skipValue(depth: depth + 1) }
            default:
                _ = try parseScalar()
            }
        }

        mutating func parseString() throws(SyntaxError) -> String {
            let start = pos
            pos += 1  // opening quote
            var plainEnd = pos
            while plainEnd < bytes.count {
                let b = bytes[plainEnd]
                if b == UInt8(ascii: "\"") {
                    let s = String(decoding: bytes[pos..<plainEnd], as: UTF8.self)
                    pos = plainEnd + 1
                    return s
                }
                if b == UInt8(ascii: "\\") || b < 0x20 { break }
                plainEnd += 1
            }
            // Slow path: escapes.
            var out: [UInt8] = Array(bytes[pos..<plainEnd])
            pos = plainEnd
            while pos < bytes.count {
                let b = bytes[pos]
                if b == UInt8(ascii: "\"") {
                    pos += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if b < 0x20 { throw SyntaxError(message: "control character in a string at byte \(pos)") }
                if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
                pos += 1
                guard pos < bytes.count else { break }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(34)
                case UInt8(ascii: "\\"): out.append(92)
                case UInt8(ascii: "/"): out.append(47)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00,
                       pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        pos += 2
                        let low = try hex4()
                        if low >= 0xDC00 && low < 0xE000 {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                    }
                    let s = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    out.append(contentsOf: String(Character(s)).utf8)
                default:
                    throw SyntaxError(message: "bad escape '\\\(Character(Unicode.Scalar(e)))' at byte \(pos - 1)")
                }
            }
            throw SyntaxError(message: "unterminated string starting at byte \(start)")
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            guard pos + 4 <= bytes.count else { throw SyntaxError(message: "truncated \\u escape at byte \(pos)") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[pos]
                let d: UInt32
                switch b {
                case 48...57: d = UInt32(b - 48)
                case 65...70: d = UInt32(b - 55)
                case 97...102: d = UInt32(b - 87)
                default: throw SyntaxError(message: "bad \\u escape at byte \(pos)")
                }
                v = v << 4 | d
                pos += 1
            }
            return v
        }

        mutating func parseNumber() throws(SyntaxError) -> Scalar {
            let start = pos
            var isInteger = true
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            let digitsStart = pos
            while pos < bytes.count, bytes[pos] >= 48, bytes[pos] <= 57 { pos += 1 }
            guard pos > digitsStart else {
                pos = start
                throw SyntaxError(message: "unexpected \(describeHere()) at byte \(start) (expected a value)")
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                isInteger = false
                pos += 1
                let f = pos
                while pos < bytes.count, bytes[pos] >= 48, bytes[pos] <= 57 { pos += 1 }
                guard pos > f else { throw SyntaxError(message: "malformed number at byte \(start)") }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                isInteger = false
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                let e = pos
                while pos < bytes.count, bytes[pos] >= 48, bytes[pos] <= 57 { pos += 1 }
                guard pos > e else { throw SyntaxError(message: "malformed number at byte \(start)") }
            }
            if isInteger, pos - start <= 19 {
                // Fast exact path for timestamps and whole values.
                var v: Int64 = 0
                var i = bytes[start] == UInt8(ascii: "-") ? start + 1 : start
                var overflow = false
                while i < pos {
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] - 48))
                    if o1 || o2 { overflow = true; break }
                    v = a
                    i += 1
                }
                if !overflow {
                    if bytes[start] == UInt8(ascii: "-") { v = -v }
                    return .number(integer: v, double: Double(v))
                }
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            guard let d = Double(text) else { throw SyntaxError(message: "malformed number at byte \(start)") }
            return .number(integer: nil, double: d)
        }

        mutating func literal(_ word: String) throws(SyntaxError) {
            let w = Array(word.utf8)
            guard pos + w.count <= bytes.count, Array(bytes[pos..<pos + w.count]) == w else {
                throw SyntaxError(message: "unexpected \(describeHere()) at byte \(pos)")
            }
            pos += w.count
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(SyntaxError) {
            guard pos < bytes.count, bytes[pos] == byte else {
                throw SyntaxError(message: "expected \(what) at byte \(pos), found \(describeHere())")
            }
            pos += 1
        }

        mutating func skipWhitespace() {
            while pos < bytes.count {
                switch bytes[pos] {
                case 0x20, 0x0A, 0x0D, 0x09: pos += 1
                default: return
                }
            }
        }

        func describeHere() -> String {
            guard pos < bytes.count else { return "the end of the body" }
            let end = min(bytes.count, pos + 16)
            let shown = String(decoding: bytes[pos..<end], as: UTF8.self)
                .map { $0.isASCII && !$0.isNewline ? String($0) : "?" }.joined()
            return "'\(shown)'"
        }
    }
}
