/// The `line` payload format: InfluxDB line protocol, one point a line.
///
/// ```text
/// weather,device=d1,site=roof temp=21.5,hum=40i,ok=true 1732540000123000000
/// ```
/// gives `weather.temp = 21.5`, `weather.hum = 40` and `weather.ok = 1`:
/// - the metric is `measurement.field`; the device is the topic's `{device}` level when the
///   subscription has one, else the line's `device` tag. Other tags are ignored.
/// - escaping as InfluxDB writes it: `\,` and `\ ` in the measurement; `\,` `\=` `\ ` in tag
///   keys, tag values and field keys; `\"` and `\\` in string fields. A backslash before
///   anything else is kept as is.
/// - fields: floats (`1`, `-1.5e3`), integers `12i`, unsigned `12u`, booleans
///   (`t T true True TRUE f F false False FALSE`) as 1/0. String fields are not numeric:
///   a problem for that field; the line's other fields still count.
/// - the timestamp is an integer in `precision` (config `precision`, default ns), rounded to
///   the nearest millisecond; a line without one gets the receive time (counted).
/// - blank lines and `#` comments are skipped; `\r\n` line ends are fine.
///
/// A malformed line is a problem naming its number (`line 3: ...`); the other lines still
/// decode.
public struct LinePayloadDecoder: PayloadDecoder {
    /// The unit of the timestamps.
    public var precision: TimestampUnit

    /// A decoder reading timestamps in `precision`.
    public init(precision: TimestampUnit = .nanoseconds) {
        self.precision = precision
    }

    /// Decodes every line of one payload, appending the readings to `readings`; never
    /// traps, whatever the bytes.
    public func decode(_ payload: [UInt8], context: PayloadContext, appendingTo readings: inout [Reading]) -> PayloadReport {
        payload.withUnsafeBufferPointer { buffer in
            var state = State(bytes: buffer, context: context, precision: precision)
            // Every problem is a line's: the payload never fails as a whole.
            return state.decode(appendingTo: &readings) { state in
                var lineStart = 0
                var lineNumber = 1
                while lineStart <= buffer.count {
                    var lineEnd = lineStart
                    while lineEnd < buffer.count && buffer[lineEnd] != 0x0A { lineEnd += 1 }
                    var end = lineEnd
                    if end > lineStart && buffer[end - 1] == 0x0D { end -= 1 }
                    state.decodeLine(start: lineStart, end: end, number: lineNumber)
                    lineStart = lineEnd + 1
                    lineNumber += 1
                }
                if !state.sawLine {
                    state.out.problems.append(PayloadProblem("empty payload (no line-protocol lines)"))
                }
                return nil
            }
        }
    }

    private struct LineProblem: Error {
        var message: String
    }

    private struct State: PayloadDecodingState {
        let bytes: UnsafeBufferPointer<UInt8>
        let context: PayloadContext
        let precision: TimestampUnit
        var out = DecodedPayload()
        var measurement: [UInt8] = []
        var scratch: [UInt8] = []
        var fieldNames: [String] = []
        var fieldValues: [Double] = []
        var fieldProblems: [String] = []
        // The device tag's value of the previous line, to reuse its String.
        var lastDeviceBytes: [UInt8] = []
        var lastDevice = ""
        var sawLine = false
        var check = NameCheck()

        init(bytes: UnsafeBufferPointer<UInt8>, context: PayloadContext, precision: TimestampUnit) {
            self.bytes = bytes
            self.context = context
            self.precision = precision
        }

        mutating func decodeLine(start: Int, end: Int, number: Int) {
            var i = start
            while i < end && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
            if i == end || bytes[i] == UInt8(ascii: "#") { return }
            sawLine = true
            do {
                try parseLine(from: i, end: end, number: number)
            } catch {
                out.problems.append(PayloadProblem("line \(number): \(error.message)"))
            }
        }

        /// Reads an escaped token up to one of the stop bytes (unescaped) into `into`.
        /// `escapable` lists the bytes a backslash escapes here.
        func token(_ i: inout Int, end: Int, stops: (UInt8, UInt8, UInt8), escapable: (UInt8, UInt8, UInt8), into buffer: inout [UInt8]) {
            buffer.removeAll(keepingCapacity: true)
            var runStart = i
            while i < end {
                let b = bytes[i]
                if b == stops.0 || b == stops.1 || b == stops.2 { break }
                if b == 0x5C && i + 1 < end {
                    let n = bytes[i + 1]
                    if n == escapable.0 || n == escapable.1 || n == escapable.2 {
                        buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
                        buffer.append(n)
                        i += 2
                        runStart = i
                        continue
                    }
                }
                i += 1
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
        }

        mutating func parseLine(from start: Int, end: Int, number: Int) throws(LineProblem) {
            let space = UInt8(ascii: " "), comma = UInt8(ascii: ","), equals = UInt8(ascii: "=")
            var i = start
            // Measurement.
            token(&i, end: end, stops: (comma, space, space), escapable: (comma, space, space), into: &measurement)
            guard !measurement.isEmpty else { throw LineProblem(message: "the measurement name is missing") }
            // Tags.
            var deviceTag: String? = nil
            while i < end && bytes[i] == comma {
                i += 1
                token(&i, end: end, stops: (equals, comma, space), escapable: (comma, equals, space), into: &scratch)
                guard !scratch.isEmpty else { throw LineProblem(message: "empty tag key") }
                guard i < end, bytes[i] == equals else { throw LineProblem(message: "tag '\(shown(scratch))' has no '=value'") }
                i += 1
                let isDevice = scratch.elementsEqual("device".utf8)
                token(&i, end: end, stops: (comma, space, space), escapable: (comma, equals, space), into: &scratch)
                guard !scratch.isEmpty else { throw LineProblem(message: "empty tag value") }
                if isDevice {
                    if scratch != lastDeviceBytes {
                        lastDeviceBytes = scratch
                        lastDevice = String(decoding: scratch, as: UTF8.self)
                    }
                    deviceTag = lastDevice
                }
            }
            guard i < end, bytes[i] == space else { throw LineProblem(message: "expected a space and fields after '\(shown(measurement))'") }
            while i < end && bytes[i] == space { i += 1 }
            // Fields.
            fieldNames.removeAll(keepingCapacity: true)
            fieldValues.removeAll(keepingCapacity: true)
            fieldProblems.removeAll(keepingCapacity: true)
            while true {
                token(&i, end: end, stops: (equals, comma, space), escapable: (comma, equals, space), into: &scratch)
                guard !scratch.isEmpty else { throw LineProblem(message: "empty field key") }
                guard i < end, bytes[i] == equals else { throw LineProblem(message: "field '\(shown(scratch))' has no '=value'") }
                i += 1
                let key = scratch
                guard i < end else { throw LineProblem(message: "field '\(shown(key))' has no value") }
                if bytes[i] == UInt8(ascii: "\"") {
                    try skipStringField(&i, end: end, key: key)
                    fieldProblems.append("field '\(shown(key))' is a string, not a number")
                } else {
                    let valueStart = i
                    while i < end && bytes[i] != comma && bytes[i] != space { i += 1 }
                    let value = try parseFieldValue(start: valueStart, end: i, key: key)
                    var name = measurement
                    name.append(UInt8(ascii: "."))
                    name.append(contentsOf: key)
                    fieldNames.append(String(decoding: name, as: UTF8.self))
                    fieldValues.append(value)
                }
                if i < end && bytes[i] == comma { i += 1; continue }
                break
            }
            // Timestamp.
            while i < end && bytes[i] == space { i += 1 }
            var ts: Int64? = nil
            if i < end {
                let tsStart = i
                var negative = false
                if bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
                var v: Int64 = 0
                var digits = 0
                while i < end, bytes[i] &- 48 < 10 {
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] &- 48))
                    guard !o1 && !o2 else { throw LineProblem(message: "timestamp is too large") }
                    v = a
                    digits += 1
                    i += 1
                }
                while i < end && (bytes[i] == space || bytes[i] == 0x09) { i += 1 }
                guard digits > 0, i == end else {
                    let text = UnsafeBufferPointer(rebasing: bytes[tsStart..<Swift.min(end, tsStart + 40)])
                    throw LineProblem(message: "'\(shown(Array(text)))' is not a timestamp (an integer in \(precision.rawValue) expected)")
                }
                guard let ms = precision.milliseconds(fromInteger: negative ? -v : v) else {
                    throw LineProblem(message: "timestamp is out of range")
                }
                ts = ms
            }
            // Readings.
            let at = "line \(number)"
            for problem in fieldProblems { out.problems.append(PayloadProblem("\(at): \(problem)")) }
            guard let device = context.device ?? deviceTag else {
                throw LineProblem(message: "no device (the topic has no {device} level and the line no 'device' tag)")
            }
            for k in fieldNames.indices {
                if let problem = check.problem(device: device, metric: fieldNames[k], value: fieldValues[k]) {
                    out.problems.append(PayloadProblem("\(at): field '\(fieldNames[k].prefix(64))': \(problem)"))
                } else {
                    out.readings.append(Reading(device: device, metric: fieldNames[k], ts: ts ?? context.receivedAt, value: fieldValues[k]))
                    if ts == nil { out.stamped.append(out.readings.count - 1) }
                }
            }
        }

        func skipStringField(_ i: inout Int, end: Int, key: [UInt8]) throws(LineProblem) {
            i += 1
            while i < end {
                if bytes[i] == 0x5C { i += 2; continue }
                if bytes[i] == UInt8(ascii: "\"") { i += 1; return }
                i += 1
            }
            throw LineProblem(message: "field '\(shown(key))': unterminated string")
        }

        func parseFieldValue(start: Int, end: Int, key: [UInt8]) throws(LineProblem) -> Double {
            let text = UnsafeBufferPointer(rebasing: bytes[start..<end])
            func bad() -> LineProblem {
                LineProblem(message: "field '\(shown(key))': '\(shown(Array(text.prefix(40))))' is not a number, integer or boolean")
            }
            guard let last = text.last else { throw bad() }
            switch last {
            case UInt8(ascii: "i"):
                guard let v = DecimalText.integer(UnsafeBufferPointer(rebasing: text.dropLast()), signed: true) else { throw bad() }
                return Double(v)
            case UInt8(ascii: "u"):
                guard let v = DecimalText.integer(UnsafeBufferPointer(rebasing: text.dropLast()), signed: false) else { throw bad() }
                return Double(v)
            default:
                if let v = DecimalText.float(text) { return v }
                if let flag = DecimalText.boolean(text) { return flag ? 1 : 0 }
                throw bad()
            }
        }

        func shown(_ bytes: [UInt8]) -> String {
            String(decoding: bytes.prefix(64), as: UTF8.self)
        }
    }
}
