/// The `senml` payload format: SenML JSON (RFC 8428), a pack (array) of records.
///
/// ```json
/// [{"bn": "urn:dev:ow:10e2073a01080063:", "bt": 1.276020076001e+09, "n": "voltage", "v": 120.1},
///  {"n": "current", "t": -5, "v": 1.2}]
/// ```
/// Records are resolved as the RFC says (§4.6): base fields (`bn`, `bt`, `bu`, `bv`, `bs`,
/// `bver`) apply to their record and every later one until changed; the time is `bt + t`
/// in seconds, and a resolved time below 2^28 is relative to "now" — the edge's receive
/// time — so a record without any time gets the receive time (those are listed in
/// `stamped`). Times are rounded to the nearest millisecond. The value is
/// `bv + v`; `vb` gives 1/0.
///
/// Mapping to readings:
/// - device: the topic's `{device}`; on a topic without one, the base name without its
///   trailing separators (`urn:dev:ow:10e2073a01080063:` → `urn:dev:ow:10e2073a01080063`).
/// - metric: the record's own name `n` (the base name is not part of it). A record without
///   `n` is named by its unit (`u`, else `bu`) when that is a valid name (the RFC's
///   "multiple measurements" example tells `lat` from `lon` only by unit).
/// - a sum (`bs + s`) becomes its own reading, metric `<name>.sum`, next to the value.
/// - string (`vs`) and data (`vd`) values are not numeric: a problem for that record.
/// - `bver` above 10 and unknown must-understand fields (ending in `_`) make the whole pack
///   a problem, as the RFC requires.
///
/// Problems name the record (`record 3 ('label'): string value ('vs') is not numeric`).
public struct SenMLPayloadDecoder: PayloadDecoder {
    /// The highest SenML version understood.
    public static let supportedVersion = 10

    /// A SenML JSON decoder (it has no settings: times are always seconds).
    public init() {}

    /// Decodes one pack, appending its readings to `readings`; never traps, whatever the
    /// bytes.
    public func decode(_ payload: [UInt8], context: PayloadContext, appendingTo readings: inout [Reading]) -> PayloadReport {
        var state = State(context: context)
        // A pack that fails as a whole: none of it is taken.
        return state.decode(appendingTo: &readings) { state in
            payload.withUnsafeBufferPointer { buffer in
                var scanner = JSONScanner(buffer)
                do {
                    switch scanner.peek() {
                    case UInt8(ascii: "["):
                        var index = 0
                        while try scanner.nextElement(index, in: "the pack") {
                            if scanner.peek() == UInt8(ascii: "{") {
                                try state.decodeRecord(&scanner, index: index)
                            } else {
                                try scanner.skipValue(depth: 1)
                                state.out.problems.append(PayloadProblem("record \(index): not an object"))
                            }
                            index += 1
                        }
                    case UInt8(ascii: "{"):
                        // Not a pack, but unambiguous: a pack of one record.
                        try state.decodeRecord(&scanner, index: 0)
                    case nil:
                        return PayloadProblem("empty payload (a SenML pack, a JSON array, expected)")
                    default:
                        throw scanner.error("expected a SenML pack (a JSON array)\(scanner.foundDescription())")
                    }
                    try scanner.expectEnd()
                } catch let error as JSONSyntaxError {
                    return PayloadProblem("not valid JSON: \(error)")
                } catch let error as PackProblem {
                    return PayloadProblem(error.reason)
                } catch {
                    return PayloadProblem("\(error)")
                }
                return nil
            }
        }
    }

    /// A problem that sinks the whole pack.
    private struct PackProblem: Error { var reason: String }

    /// The fields SenML defines (RFC 8428 §4.1 and §4.2).
    private enum Field {
        case bn, bt, bu, bv, bs, bver, n, u, v, vs, vb, vd, s, t, ut, other

        init(_ key: [UInt8]) {
            switch key.count {
            case 1:
                switch key[0] {
                case UInt8(ascii: "n"): self = .n
                case UInt8(ascii: "u"): self = .u
                case UInt8(ascii: "v"): self = .v
                case UInt8(ascii: "s"): self = .s
                case UInt8(ascii: "t"): self = .t
                default: self = .other
                }
            case 2:
                switch (key[0], key[1]) {
                case (UInt8(ascii: "b"), UInt8(ascii: "n")): self = .bn
                case (UInt8(ascii: "b"), UInt8(ascii: "t")): self = .bt
                case (UInt8(ascii: "b"), UInt8(ascii: "u")): self = .bu
                case (UInt8(ascii: "b"), UInt8(ascii: "v")): self = .bv
                case (UInt8(ascii: "b"), UInt8(ascii: "s")): self = .bs
                case (UInt8(ascii: "v"), UInt8(ascii: "s")): self = .vs
                case (UInt8(ascii: "v"), UInt8(ascii: "b")): self = .vb
                case (UInt8(ascii: "v"), UInt8(ascii: "d")): self = .vd
                case (UInt8(ascii: "u"), UInt8(ascii: "t")): self = .ut
                default: self = .other
                }
            case 4 where key.elementsEqual("bver".utf8):
                self = .bver
            default:
                self = .other
            }
        }
    }

    private struct State: PayloadDecodingState {
        let context: PayloadContext
        var out = DecodedPayload()
        var key: [UInt8] = []
        // Base fields carried from record to record.
        var baseName = ""
        var baseDevice: String? = nil
        var baseTime = 0.0
        var baseUnit: String? = nil
        var baseValue = 0.0
        var baseSum = 0.0
        var check = NameCheck()

        init(context: PayloadContext) {
            self.context = context
        }

        mutating func decodeRecord(_ scanner: inout JSONScanner, index: Int) throws -> Void {
            var name: String? = nil
            var unit: String? = nil
            var value: Double? = nil
            var sum: Double? = nil
            var time: Double? = nil
            var hasString = false
            var hasData = false
            var problem: String? = nil

            func number(_ scanner: inout JSONScanner, _ field: String) throws(JSONSyntaxError) -> Double? {
                if let b = scanner.peek(), b == UInt8(ascii: "-") || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) {
                    return try scanner.readNumber().double
                }
                try scanner.skipValue(depth: 2)
                if problem == nil { problem = "field '\(field)' is not a number" }
                return nil
            }
            func string(_ scanner: inout JSONScanner, _ field: String) throws(JSONSyntaxError) -> String? {
                if scanner.peek() == UInt8(ascii: "\"") { return try scanner.readString() }
                try scanner.skipValue(depth: 2)
                if problem == nil { problem = "field '\(field)' is not a string" }
                return nil
            }

            scanner.pos += 1 // '{'
            if scanner.peek() != UInt8(ascii: "}") {
                while true {
                    key.removeAll(keepingCapacity: true)
                    try scanner.appendString(to: &key)
                    try scanner.expect(UInt8(ascii: ":"), "':' after a key")
                    switch Field(key) {
                    case .bn:
                        if let bn = try string(&scanner, "bn") {
                            baseName = bn
                            baseDevice = SenMLPayloadDecoder.device(fromBaseName: bn)
                        }
                    case .bt: if let x = try number(&scanner, "bt") { baseTime = x }
                    case .bu: if let x = try string(&scanner, "bu") { baseUnit = x }
                    case .bv: if let x = try number(&scanner, "bv") { baseValue = x }
                    case .bs: if let x = try number(&scanner, "bs") { baseSum = x }
                    case .bver:
                        if let x = try number(&scanner, "bver"), x > Double(SenMLPayloadDecoder.supportedVersion) {
                            throw PackProblem(reason: "record \(index): SenML version \(x) is not supported (up to \(SenMLPayloadDecoder.supportedVersion))")
                        }
                    case .n: name = try string(&scanner, "n")
                    case .u: unit = try string(&scanner, "u")
                    case .v: value = try number(&scanner, "v")
                    case .s: sum = try number(&scanner, "s")
                    case .t: time = try number(&scanner, "t")
                    case .vs: hasString = true; try scanner.skipValue(depth: 2)
                    case .vd: hasData = true; try scanner.skipValue(depth: 2)
                    case .vb:
                        switch scanner.peek() {
                        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                            if let flag = try scanner.readLiteral() { value = flag ? 1 : 0 }
                            else if problem == nil { problem = "field 'vb' is not a boolean" }
                        default:
                            try scanner.skipValue(depth: 2)
                            if problem == nil { problem = "field 'vb' is not a boolean" }
                        }
                    case .ut:
                        try scanner.skipValue(depth: 2)
                    case .other:
                        if key.last == UInt8(ascii: "_") {
                            let shown = String(decoding: key.prefix(40), as: UTF8.self)
                            throw PackProblem(reason: "record \(index): must-understand field '\(shown)' is not supported")
                        }
                        try scanner.skipValue(depth: 2)
                    }
                    if scanner.peek() == UInt8(ascii: ",") { scanner.pos += 1; continue }
                    try scanner.expect(UInt8(ascii: "}"), "',' or '}' in a record")
                    break
                }
            } else {
                scanner.pos += 1
            }
            resolve(index: index, name: name, unit: unit, value: value, sum: sum, time: time,
                    hasString: hasString, hasData: hasData, problem: problem)
        }

        mutating func resolve(index: Int, name: String?, unit: String?, value: Double?, sum: Double?, time: Double?,
                              hasString: Bool, hasData: Bool, problem: String?) {
            let label = name.map { "record \(index) ('\($0.prefix(64))')" } ?? "record \(index)"
            if let problem {
                out.problems.append(PayloadProblem("\(label): \(problem)"))
                return
            }
            // The metric: the record's own name, else its unit.
            let metric: String
            if let name, !name.isEmpty {
                metric = name
            } else if let u = unit ?? baseUnit, Reading(device: "d", metric: u, ts: 0, value: 0).problem == nil {
                metric = u
            } else if value == nil && sum == nil && !hasString && !hasData {
                // A record holding only base fields (the RFC allows that) yields nothing.
                return
            } else {
                let why = (unit ?? baseUnit).map { " and its unit '\($0.prefix(32))' is not a valid metric name" } ?? ""
                out.problems.append(PayloadProblem("\(label): no name ('n')\(why)"))
                return
            }
            guard value != nil || sum != nil else {
                if hasString {
                    out.problems.append(PayloadProblem("\(label): string value ('vs') is not numeric"))
                } else if hasData {
                    out.problems.append(PayloadProblem("\(label): data value ('vd') is not numeric"))
                } else {
                    out.problems.append(PayloadProblem("\(label): no value ('v', 'vb' or 's')"))
                }
                return
            }
            guard let device = context.device ?? baseDevice else {
                out.problems.append(PayloadProblem("\(label): no device (the topic has no {device} level and the pack no base name 'bn')"))
                return
            }
            // Time: relative to now below 2^28 s, absolute above.
            let seconds = baseTime + (time ?? 0)
            let ts: Int64
            let stamped = seconds == 0
            if stamped {
                ts = context.receivedAt
            } else {
                let relative = seconds < 268_435_456
                guard let ms = TimestampUnit.seconds.milliseconds(fromDouble: seconds),
                      let t = relative ? context.receivedAt.addingReportingOverflowOptional(ms) : ms else {
                    out.problems.append(PayloadProblem("\(label): time \(seconds) s is out of range"))
                    return
                }
                ts = t
            }
            if let value {
                append(Reading(device: device, metric: metric, ts: ts, value: baseValue + value), label: label, stamped: stamped)
            }
            if let sum {
                append(Reading(device: device, metric: metric + ".sum", ts: ts, value: baseSum + sum), label: label, stamped: stamped)
            }
        }

        mutating func append(_ reading: Reading, label: String, stamped: Bool) {
            if let problem = check.problem(device: reading.device, metric: reading.metric, value: reading.value) {
                out.problems.append(PayloadProblem("\(label): \(problem)"))
            } else {
                out.readings.append(reading)
                if stamped { out.stamped.append(out.readings.count - 1) }
            }
        }
    }

    /// The device a base name stands for: the base name without its trailing separators
    /// (anything but letters and digits), or `nil` when nothing is left.
    public static func device(fromBaseName bn: String) -> String? {
        var bytes = Array(bn.utf8)
        while let last = bytes.last, !isAlphanumeric(last) { bytes.removeLast() }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b >= 0x80
    }
}

extension Int64 {
    fileprivate func addingReportingOverflowOptional(_ other: Int64) -> Int64? {
        let (r, o) = addingReportingOverflow(other)
        return o ? nil : r
    }
}
