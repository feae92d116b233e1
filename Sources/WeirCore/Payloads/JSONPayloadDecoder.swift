/// The `json` payload format: one object or an array of objects.
///
/// ```json
/// {"ts": 1732540000123, "temp": 21.5, "hum": 40, "door": {"open": true}}
/// ```
/// gives `temp = 21.5`, `hum = 40` and `door.open = 1` at `ts`:
/// - `ts` is an epoch number in `tsUnit` (config `ts_unit`, default ms; a fraction is
///   rounded to the nearest millisecond) or an RFC 3339 string with any offset. An object
///   without `ts` gets the receive time (listed in `stamped`); a `ts` that
///   is neither is a problem for that object.
/// - Every other number is a metric named by its key; `true`/`false` are 1/0; nested
///   objects are flattened with dots (`a.b`). Strings, `null` and arrays are ignored.
/// - The device is the topic's `{device}` level. When the subscription has none, an
///   object's `"device"` field (a string) names it; with a topic device, `"device"` is an
///   ordinary field (a string there is ignored like any other).
///
/// Problems name the element and field (`element 2: field 'temp': value is inf (a finite
/// number expected)`). A problem in one element does not sink the others, but a payload
/// that is not valid JSON gives one problem and no readings.
public struct JSONPayloadDecoder: PayloadDecoder {
    /// The unit of numeric `ts` values.
    public var tsUnit: TimestampUnit

    /// A decoder reading numeric `ts` values in `tsUnit`.
    public init(tsUnit: TimestampUnit = .milliseconds) {
        self.tsUnit = tsUnit
    }

    /// Decodes one payload, appending its readings to `readings`; never traps, whatever
    /// the bytes.
    public func decode(_ payload: [UInt8], context: PayloadContext, appendingTo readings: inout [Reading]) -> PayloadReport {
        var state = State(context: context, tsUnit: tsUnit)
        // Not valid JSON: none of it is taken.
        return state.decode(appendingTo: &readings) { state in
            payload.withUnsafeBufferPointer { buffer in
                var scanner = JSONScanner(buffer)
                do {
                    switch scanner.peek() {
                    case UInt8(ascii: "{"):
                        try state.decodeObject(&scanner, element: nil)
                    case UInt8(ascii: "["):
                        var index = 0
                        while try scanner.nextElement(index, in: "the array") {
                            if scanner.peek() == UInt8(ascii: "{") {
                                try state.decodeObject(&scanner, element: index)
                            } else {
                                try scanner.skipValue(depth: 1)
                                state.out.problems.append(PayloadProblem("element \(index): not an object"))
                            }
                            index += 1
                        }
                    case nil:
                        return PayloadProblem("empty payload (a JSON object or array expected)")
                    default:
                        throw scanner.error("expected a JSON object or array\(scanner.foundDescription())")
                    }
                    try scanner.expectEnd()
                } catch {
                    return PayloadProblem("not valid JSON: \(error)")
                }
                return nil
            }
        }
    }

    /// What one decode call carries between objects; buffers are reused across elements.
    private struct State: PayloadDecodingState {
        let context: PayloadContext
        let tsUnit: TimestampUnit
        var out = DecodedPayload()
        var names: [String] = []
        var values: [Double] = []
        var path: [UInt8] = []
        var ts: Int64? = nil
        var tsProblem: String? = nil
        var device: String? = nil
        var deviceProblem: String? = nil
        var check = NameCheck()

        init(context: PayloadContext, tsUnit: TimestampUnit) {
            self.context = context
            self.tsUnit = tsUnit
        }

        mutating func decodeObject(_ scanner: inout JSONScanner, element: Int?) throws(JSONSyntaxError) {
            names.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            path.removeAll(keepingCapacity: true)
            ts = nil
            tsProblem = nil
            device = context.device
            deviceProblem = nil
            try readMembers(&scanner, depth: 1, topLevel: true)
            finish(element: element)
        }

        /// Reads `{...}` (the scanner is at `{`), adding metrics named `path + key`.
        mutating func readMembers(_ scanner: inout JSONScanner, depth: Int, topLevel: Bool) throws(JSONSyntaxError) {
            guard depth <= JSONScanner.maxDepth else { throw scanner.error("nested deeper than \(JSONScanner.maxDepth) levels") }
            scanner.pos += 1
            if scanner.peek() == UInt8(ascii: "}") { scanner.pos += 1; return }
            let prefixLength = path.count
            while true {
                path.removeSubrange(prefixLength...)
                try scanner.appendString(to: &path)
                try scanner.expect(UInt8(ascii: ":"), "':' after a key")
                let keyIsTs = topLevel && path.count == 2 && path[0] == UInt8(ascii: "t") && path[1] == UInt8(ascii: "s")
                // Only without a topic device does a "device" field name the device.
                let keyIsDevice = topLevel && context.device == nil && path.elementsEqual("device".utf8)
                guard let b = scanner.peek() else { throw scanner.error("expected a value but the payload ends") }
                switch b {
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    let number = try scanner.readNumber()
                    if keyIsTs {
                        let ms = number.integer.map { tsUnit.milliseconds(fromInteger: $0) } ?? tsUnit.milliseconds(fromDouble: number.double)
                        if let ms { ts = ms; tsProblem = nil } else { tsProblem = "field 'ts': \(number.double) \(tsUnit.rawValue) is out of range" }
                    } else if keyIsDevice {
                        deviceProblem = "field 'device': a string expected"
                    } else {
                        names.append(String(decoding: path, as: UTF8.self))
                        values.append(number.double)
                    }
                case UInt8(ascii: "\""):
                    if keyIsTs {
                        let start = scanner.pos + 1
                        try scanner.skipString()
                        let text = UnsafeBufferPointer(rebasing: scanner.bytes[start..<(scanner.pos - 1)])
                        if let ms = RFC3339.parse(text) {
                            ts = ms; tsProblem = nil
                        } else {
                            let shown = String(decoding: text.prefix(40), as: UTF8.self)
                            tsProblem = "field 'ts': '\(shown)' is not an RFC 3339 time"
                        }
                    } else if keyIsDevice {
                        device = try scanner.readString()
                    } else {
                        try scanner.skipString()
                    }
                case UInt8(ascii: "{"):
                    if keyIsTs { tsProblem = "field 'ts': an object is not a time" }
                    path.append(UInt8(ascii: "."))
                    try readMembers(&scanner, depth: depth + 1, topLevel: false)
                case UInt8(ascii: "["):
                    if keyIsTs { tsProblem = "field 'ts': an array is not a time" }
                    try scanner.skipValue(depth: depth)
                default:
                    let literal = try scanner.readLiteral()
                    if keyIsTs {
                        tsProblem = "field 'ts': \(literal.map { String($0) } ?? "null") is not a time"
                    } else if let literal {
                        names.append(String(decoding: path, as: UTF8.self))
                        values.append(literal ? 1 : 0)
                    }
                }
                if scanner.peek() == UInt8(ascii: ",") { scanner.pos += 1; continue }
                try scanner.expect(UInt8(ascii: "}"), "',' or '}' in an object")
                path.removeSubrange(prefixLength...)
                return
            }
        }

        /// Turns the fields of one object into readings or problems.
        mutating func finish(element: Int?) {
            let at = element.map { "element \($0): " } ?? ""
            if let tsProblem {
                out.problems.append(PayloadProblem(at + tsProblem))
                return
            }
            if let deviceProblem {
                out.problems.append(PayloadProblem(at + deviceProblem))
                return
            }
            guard let device else {
                out.problems.append(PayloadProblem(at + "no device (the topic has no {device} level and the object no \"device\" field)"))
                return
            }
            if let problem = check.problem(device: device) {
                out.problems.append(PayloadProblem(at + "device '\(device.prefix(64))': \(problem)"))
                return
            }
            guard !names.isEmpty else {
                out.problems.append(PayloadProblem(at + "no metrics (no numeric or boolean field)"))
                return
            }
            let time = ts ?? context.receivedAt
            out.readings.reserveCapacity(out.readings.count + names.count)
            for i in names.indices {
                if let problem = check.problem(device: device, metric: names[i], value: values[i]) {
                    out.problems.append(PayloadProblem(at + "field '\(names[i].prefix(64))': \(problem)"))
                } else {
                    out.readings.append(Reading(device: device, metric: names[i], ts: time, value: values[i]))
                    if ts == nil { out.stamped.append(out.readings.count - 1) }
                }
            }
        }
    }
}
