/// The payload formats a subscription can name (`format: json | senml | line`).
public enum PayloadFormat: String, Sendable, Hashable, CaseIterable, Codable {
    case json
    case senml
    case line
}

/// Where a payload came from: what a decoder needs besides the bytes.
public struct PayloadContext: Sendable, Hashable {
    /// The MQTT topic it arrived on.
    public var topic: String
    /// The topic's `{device}` level, when the subscription pattern has one.
    public var device: String?
    /// When the edge received it, epoch ms; readings without a time get this one.
    public var receivedAt: Int64

    public init(topic: String, device: String?, receivedAt: Int64) {
        self.topic = topic
        self.device = device
        self.receivedAt = receivedAt
    }
}

/// Why (part of) a payload could not become readings. `reason` names the problem and
/// where (`"record 3: field 'v' is a string"`); it goes into the dead-letter table.
public struct PayloadProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// What one payload decoded to: the readings it held, and the parts that could not be
/// read (a payload can be partly good: a bad record in an array does not sink the rest).
public struct DecodedPayload: Sendable, Hashable {
    public var readings: [Reading]
    public var problems: [PayloadProblem]
    /// Where in `readings` the readings are that got the receive time because they
    /// carried no time of their own (in ascending order).
    public var stamped: [Int]

    /// How many readings got the receive time.
    public var stampedWithReceiveTime: Int { stamped.count }

    public init(readings: [Reading] = [], problems: [PayloadProblem] = [], stamped: [Int] = []) {
        self.readings = readings
        self.problems = problems
        self.stamped = stamped
    }
}

/// What decoding a payload into a caller's buffer found besides the readings it appended
/// (`PayloadDecoder.decode(_:context:appendingTo:)`).
public struct PayloadReport: Sendable, Hashable {
    public var problems: [PayloadProblem]
    /// Where in the buffer the appended readings are that got the receive time because
    /// they carried no time of their own (in ascending order).
    public var stamped: [Int]

    public init(problems: [PayloadProblem] = [], stamped: [Int] = []) {
        self.problems = problems
        self.stamped = stamped
    }
}

/// Turns one message payload into readings. Total: any bytes give readings, problems or
/// both — never a crash. Implementations are value types, safe to share across tasks.
///
/// The requirement appends to a buffer the caller keeps, so a caller decoding many
/// payloads (the edge: a hand-over of messages, filtered in one call) allocates no array
/// per payload and copies no reading:
///
/// ```swift
/// var readings: [Reading] = []
/// for message in messages {
///     let report = decoder.decode(message.payload, context: context(message), appendingTo: &readings)
///     deadLetter(report.problems)
/// }
/// chain.apply(readings, into: &results)
/// ```
public protocol PayloadDecoder: Sendable {
    /// Decodes `payload`, appending its readings to `readings` and leaving the readings
    /// already there as they are. A payload that fails as a whole (not valid JSON, say)
    /// appends nothing.
    func decode(_ payload: [UInt8], context: PayloadContext, appendingTo readings: inout [Reading]) -> PayloadReport
}

/// A decoder's working state for one payload: what it has decoded so far.
protocol PayloadDecodingState {
    var out: DecodedPayload { get set }
}

extension PayloadDecodingState {
    /// Runs `body`, which decodes into `out`, with the caller's `readings` as
    /// `out.readings` (moved in and back, not copied), so `body` appends to them. A problem
    /// `body` returns sinks the whole payload: the readings it appended are taken out again.
    mutating func decode(appendingTo readings: inout [Reading], _ body: (inout Self) -> PayloadProblem?) -> PayloadReport {
        let start = readings.count
        swap(&out.readings, &readings)
        let failure = body(&self)
        swap(&out.readings, &readings)
        if let failure {
            readings.removeSubrange(start...)
            return PayloadReport(problems: [failure])
        }
        return PayloadReport(problems: out.problems, stamped: out.stamped)
    }
}

extension PayloadDecoder {
    /// Decodes `payload` on its own.
    public func decode(_ payload: [UInt8], context: PayloadContext) -> DecodedPayload {
        var readings: [Reading] = []
        let report = decode(payload, context: context, appendingTo: &readings)
        return DecodedPayload(readings: readings, problems: report.problems, stamped: report.stamped)
    }
}
