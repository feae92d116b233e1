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
        let outcome = bytes.withContiguousStorageIfAvailable(BatchJSON.decode)
            ?? Array(bytes).withUnsafeBufferPointer(BatchJSON.decode)
        switch outcome {
        case .success(let decoded): return decoded
        case .failure(let error): throw WeirError(.badInput, "body is not a JSON batch: \(error.message)")
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
    /// Drop-ledger rows refused before applying (a device the gateway may not write), by
    /// their index in the body's `drops`; `batch.drops` no longer holds them.
    public var rejectedDrops: [RejectedReading] = []

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
/// either stop at the first bad reading or cost several times more per reading. Tokens
/// (strings, numbers, literals, skipped values) are read by the payload decoders'
/// `JSONScanner`; this type walks the batch's shape and words its errors.
enum BatchJSON {
    struct SyntaxError: Error {
        var message: String

        init(_ message: String) { self.message = message }

        /// A token the scanner could not read: "byte N: what is wrong".
        init(_ error: JSONSyntaxError) { self.message = "\(error)" }
    }

    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<DecodedBatch, SyntaxError> {
        var parser = Parser(JSONScanner(bytes))
        do {
            return .success(try parser.parseBatch())
        } catch {
            return .failure(error)
        }
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

    /// Walks one batch body. Objects and arrays are stepped through here (so errors can
    /// say which field of the batch is broken); every token goes through `scanner`.
    struct Parser: ~Copyable {
        var scanner: JSONScanner
        /// The current object key, decoded (reused for every key).
        var key: [UInt8] = []

        init(_ scanner: consuming JSONScanner) {
            self.scanner = scanner
        }

        // MARK: Batch shape

        mutating func parseBatch() throws(SyntaxError) -> DecodedBatch {
            guard let first = scanner.peek() else { throw SyntaxError("the body is empty") }
            guard first == UInt8(ascii: "{") else {
                throw SyntaxError("expected a JSON object at byte 0, found \(describeHere())")
            }
            var gateway: String?
            var id: String?
            var readings: [Reading] = []
            var rejected: [RejectedReading] = []
            var readingCount = 0
            var drops: [DropRecord] = []
            var sawReadings = false
            var started = false
            while try nextMember(&started) {
                if keyIs("gateway") {
                    guard case .string(let s) = try parseScalar() else {
                        throw SyntaxError("\"gateway\" must be a string")
                    }
                    gateway = s
                } else if keyIs("batch") {
                    guard case .string(let s) = try parseScalar() else {
                        throw SyntaxError("\"batch\" must be a string")
                    }
                    id = s
                } else if keyIs("readings") {
                    sawReadings = true
                    var index = 0
                    while try nextElement(index, field: "readings") {
                        readingCount += 1
                        let start = scanner.pos
                        switch try parseReading() {
                        case .success(let reading): readings.append(reading)
                        case .failure(let problem):
                            let end = min(scanner.pos, start + 256)
                            let raw = String(decoding: UnsafeBufferPointer(rebasing: scanner.bytes[start..<end]), as: UTF8.self)
                            rejected.append(RejectedReading(index: index, reason: problem.message, raw: raw))
                        }
                        index += 1
                    }
                } else if keyIs("drops") {
                    var index = 0
                    while try nextElement(index, field: "drops") {
                        drops.append(try parseDrop(index: index))
                        index += 1
                    }
                } else {
                    try skipValue(depth: 1)
                }
            }
            if scanner.peek() != nil {
                throw SyntaxError("unexpected \(describeHere()) at byte \(scanner.pos) after the batch object")
            }
            guard let gateway else { throw SyntaxError("\"gateway\" is missing") }
            guard !gateway.isEmpty, gateway.utf8.count <= 128 else {
                throw SyntaxError("\"gateway\" must be 1–128 bytes")
            }
            guard let id else { throw SyntaxError("\"batch\" (the idempotency key) is missing") }
            guard !id.isEmpty, id.utf8.count <= 256 else {
                throw SyntaxError("\"batch\" must be 1–256 bytes")
            }
            guard sawReadings else { throw SyntaxError("\"readings\" is missing") }
            return DecodedBatch(batch: Batch(gateway: gateway, id: id, readings: readings, drops: drops),
                                rejected: rejected, readingCount: readingCount)
        }

        /// Parses one reading (the scanner is at its first byte). Syntax errors throw (the
        /// body is broken); problems with the reading's content come back as `.failure`.
        mutating func parseReading() throws(SyntaxError) -> Result<Reading, SyntaxError> {
            guard scanner.peek() == UInt8(ascii: "{") else {
                let what = describeHere()
                try skipValue(depth: 2)
                return .failure(SyntaxError("a reading must be an object, found \(what)"))
            }
            var device: Scalar?
            var metric: Scalar?
            var ts: Scalar?
            var value: Scalar?
            var started = false
            while try nextMember(&started) {
                if keyIs("device") { device = try parseScalar() }
                else if keyIs("metric") { metric = try parseScalar() }
                else if keyIs("ts") { ts = try parseScalar() }
                else if keyIs("value") { value = try parseScalar() }
                else { try skipValue(depth: 3) }
            }
            func fail(_ m: String) -> Result<Reading, SyntaxError> { .failure(SyntaxError(m)) }
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

        /// Parses one drop row (the scanner is at its first byte); any problem throws.
        mutating func parseDrop(index: Int) throws(SyntaxError) -> DropRecord {
            guard scanner.peek() == UInt8(ascii: "{") else {
                throw SyntaxError("drops[\(index)] must be an object, found \(describeHere())")
            }
            var device: Scalar?
            var metric: Scalar?
            var from: Scalar?
            var to: Scalar?
            var count: Scalar?
            var started = false
            while try nextMember(&started) {
                let field = try parseScalar()
                if keyIs("device") { device = field }
                else if keyIs("metric") { metric = field }
                else if keyIs("from") { from = field }
                else if keyIs("to") { to = field }
                else if keyIs("count") { count = field }
            }
            func name(_ field: Scalar?, _ key: String) throws(SyntaxError) -> String {
                guard case .string(let s)? = field else {
                    throw SyntaxError("drops[\(index)].\(key) must be a string")
                }
                do { try Reading.validateName(s, field: key) } catch {
                    throw SyntaxError("drops[\(index)]: \(error)")
                }
                return s
            }
            func integer(_ field: Scalar?, _ key: String) throws(SyntaxError) -> Int64 {
                guard case .number(let i?, _)? = field else {
                    throw SyntaxError("drops[\(index)].\(key) must be a whole number")
                }
                return i
            }
            let record = DropRecord(device: try name(device, "device"), metric: try name(metric, "metric"),
                                    from: try integer(from, "from"), to: try integer(to, "to"),
                                    count: try integer(count, "count"))
            guard record.count >= 0 else { throw SyntaxError("drops[\(index)].count is negative") }
            guard record.from <= record.to else { throw SyntaxError("drops[\(index)]: from is after to") }
            return record
        }

        // MARK: Objects and arrays

        /// Steps to an object's next member: the first call (with `started` false) is at
        /// the `{`. Returns `true` with the key in `key` and the scanner after its `:`, or
        /// `false` once past the closing `}`.
        mutating func nextMember(_ started: inout Bool) throws(SyntaxError) -> Bool {
            if !started {
                started = true
                scanner.pos += 1  // "{"
                if scanner.peek() == UInt8(ascii: "}") { scanner.pos += 1; return false }
            } else {
                switch scanner.peek() {
                case UInt8(ascii: ","): scanner.pos += 1
                case UInt8(ascii: "}"): scanner.pos += 1; return false
                case nil: throw SyntaxError("the body ends at byte \(scanner.pos) inside an object")
                default: throw SyntaxError("expected ',' or '}' at byte \(scanner.pos), found \(describeHere())")
                }
            }
            guard scanner.peek() == UInt8(ascii: "\"") else {
                throw SyntaxError("expected a quoted key at byte \(scanner.pos), found \(describeHere())")
            }
            key.removeAll(keepingCapacity: true)
            do { try scanner.appendString(to: &key) } catch { throw SyntaxError(error) }
            guard scanner.peek() == UInt8(ascii: ":") else {
                let shown = String(decoding: key, as: UTF8.self).prefix(40)
                throw SyntaxError("expected ':' after key \"\(shown)\" at byte \(scanner.pos), found \(describeHere())")
            }
            scanner.pos += 1
            return true
        }

        /// Whether the current key is `name`.
        @inline(__always)
        func keyIs(_ name: StaticString) -> Bool {
            let n = name.utf8CodeUnitCount
            guard key.count == n else { return false }
            let p = name.utf8Start
            for i in 0..<n where key[i] != p[i] { return false }
            return true
        }

        /// Steps through the array that is the value of `field`: with `index` 0 the scanner
        /// is at the value, otherwise after element `index - 1`. Returns `true` at the next
        /// element, `false` once past the closing `]`.
        mutating func nextElement(_ index: Int, field: String) throws(SyntaxError) -> Bool {
            if index == 0 {
                guard scanner.peek() == UInt8(ascii: "[") else {
                    throw SyntaxError("\"\(field)\" must be an array, found \(describeHere())")
                }
                scanner.pos += 1
                if scanner.peek() == UInt8(ascii: "]") { scanner.pos += 1; return false }
                return true
            }
            switch scanner.peek() {
            case UInt8(ascii: ","): scanner.pos += 1; _ = scanner.peek(); return true
            case UInt8(ascii: "]"): scanner.pos += 1; return false
            case nil: throw SyntaxError("the body ends at byte \(scanner.pos) inside \"\(field)\"")
            default: throw SyntaxError("expected ',' or ']' in \"\(field)\" at byte \(scanner.pos), found \(describeHere())")
            }
        }

        // MARK: Values

        /// Reads one value where a scalar is expected; an object or array is skipped and
        /// reported as `.composite`.
        mutating func parseScalar() throws(SyntaxError) -> Scalar {
            guard let b = scanner.peek() else {
                throw SyntaxError("the body ends at byte \(scanner.pos) where a value was expected")
            }
            do {
                switch b {
                case UInt8(ascii: "\""):
                    return .string(try scanner.readString())
                case UInt8(ascii: "{"):
                    try scanner.skipValue(depth: 4)
                    return .composite("an object")
                case UInt8(ascii: "["):
                    try scanner.skipValue(depth: 4)
                    return .composite("an array")
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    let number = try scanner.readNumber()
                    return .number(integer: number.integer, double: number.double)
                default:
                    guard let flag = try scanner.readLiteral() else { return .null }
                    return .bool(flag)
                }
            } catch {
                throw SyntaxError(error)
            }
        }

        /// Skips one value of any kind, checking its syntax.
        mutating func skipValue(depth: Int) throws(SyntaxError) {
            guard scanner.peek() != nil else {
                throw SyntaxError("the body ends at byte \(scanner.pos) where a value was expected")
            }
            do { try scanner.skipValue(depth: depth) } catch { throw SyntaxError(error) }
        }

        /// The next few bytes, quoted, or "the end of the body", for messages.
        func describeHere() -> String {
            let bytes = scanner.bytes
            let pos = scanner.pos
            guard pos < bytes.count else { return "the end of the body" }
            let end = min(bytes.count, pos + 16)
            let shown = String(decoding: UnsafeBufferPointer(rebasing: bytes[pos..<end]), as: UTF8.self)
                .map { $0.isASCII && !$0.isNewline ? String($0) : "?" }.joined()
            return "'\(shown)'"
        }
    }
}
