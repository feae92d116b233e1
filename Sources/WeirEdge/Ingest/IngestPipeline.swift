import WeirCore
import WeirMQTT

/// What happens to one MQTT message: pick the subscription its topic matches, decode
/// with that subscription's format, validate each reading, judge its timestamp
/// (`ClockPolicy`), run the filters, and sort the results into accepted readings, dead
/// letters and counters. Pure and synchronous; the `ChunkSealer` owns one.
struct IngestPipeline: Sendable {
    let subscriptions: [EdgeConfiguration.Subscription]
    private let decoders: [any PayloadDecoder]
    let clock: ClockPolicy
    var filters: FilterChain
    /// Reused for each payload's filter decisions.
    private var filterResults = FilterResults()

    init(configuration: EdgeConfiguration) {
        subscriptions = configuration.mqtt.subscriptions
        decoders = configuration.mqtt.subscriptions.map { sub -> any PayloadDecoder in
            switch sub.format {
            case .json: return JSONPayloadDecoder(tsUnit: sub.tsUnit)
            case .senml: return SenMLPayloadDecoder()
            case .line: return LinePayloadDecoder(precision: sub.precision)
            }
        }
        clock = ClockPolicy(maxSkewMs: configuration.clock.maxClockSkew.milliseconds, onBad: configuration.clock.onBadTimestamp)
        filters = FilterChain(rules: configuration.filters)
    }

    /// Processes one message into `out`.
    mutating func process(_ message: MQTTMessage, receivedAt: Int64, into out: inout SealInput) {
        out.counters["messages", default: 0] += 1
        guard let index = subscriptions.firstIndex(where: { $0.topic.matches(message.topic) }) else {
            deadLetter(message, "topic matches no configured subscription", at: receivedAt, into: &out)
            return
        }
        let subscription = subscriptions[index]
        let context = PayloadContext(topic: message.topic, device: subscription.topic.device(in: message.topic), receivedAt: receivedAt)
        let decoded = decoders[index].decode(message.payload, context: context)
        for problem in decoded.problems {
            deadLetter(message, problem.reason, at: receivedAt, into: &out)
        }
        if !decoded.stamped.isEmpty { countStamped(decoded, into: &out) }
        // The common payload — every reading valid, every timestamp plausible — goes
        // through the filters as one batch; any other takes them one at a time, which
        // keeps its dead letters (bad data, bad clocks, out of range) in payload order.
        if decoded.readings.allSatisfy({ $0.problem == nil && clock.problem(ts: $0.ts, receivedAt: receivedAt) == nil }) {
            filter(decoded.readings, of: message, at: receivedAt, into: &out)
            return
        }
        for reading in decoded.readings {
            if let problem = reading.problem {
                deadLetter(message, problem.description, at: receivedAt, into: &out)
                continue
            }
            var checked = reading
            switch clock.check(reading, receivedAt: receivedAt) {
            case .ok:
                break
            case .replaced(let fixed, let note):
                checked = fixed
                out.counters["clock_replaced", default: 0] += 1
                out.count("clock_replaced", device: reading.device)
                // A note, not a dead letter: the reading is kept (with the receive time).
                out.deadLetters.append(DeadLetter(at: receivedAt, topic: message.topic, payload: message.payload,
                                                  reason: "replaced: " + note, kind: .clockNote))
            case .rejected(let reason):
                out.counters["bad_timestamp", default: 0] += 1
                out.count("bad_timestamp", device: reading.device)
                deadLetter(message, reason, at: receivedAt, into: &out)
                continue
            }
            filter([checked], of: message, at: receivedAt, into: &out)
        }
    }

    /// Counts the readings the decoder gave the receive time (they carried no time), in
    /// total and per device (the decoder says which they are).
    private func countStamped(_ decoded: DecodedPayload, into out: inout SealInput) {
        out.counters["stamped_receive_time", default: 0] += Int64(decoded.stamped.count)
        for i in decoded.stamped {
            out.count("stamped_receive_time", device: decoded.readings[i].device)
        }
    }

    /// Runs `readings` (valid, with plausible timestamps) through the filters and sorts
    /// them: kept, held in a bucket, dropped (counted per reason and device), or out of
    /// range (a dead letter).
    private mutating func filter(_ readings: [Reading], of message: MQTTMessage, at receivedAt: Int64, into out: inout SealInput) {
        filters.apply(readings, into: &filterResults)
        var reasons = filterResults.deadLetterReasons.makeIterator()
        // The usual outcomes are tallied here and added to the counters once, not looked up
        // in the dictionary for every reading.
        var accepted: Int64 = 0
        var held: Int64 = 0
        for (reading, outcome) in zip(readings, filterResults.outcomes) {
            switch outcome {
            case .pass:
                out.readings.append(reading)
                accepted += 1
            case .held:
                held += 1
            case .dropped(let reason):
                out.counters[Self.counterName[reason] ?? "filtered_\(reason.rawValue)", default: 0] += 1
                out.count(reason.rawValue, device: reading.device)
            case .deadLetter:
                out.counters["filtered_range", default: 0] += 1
                out.count("range", device: reading.device)
                deadLetter(message, reasons.next() ?? "out of range", at: receivedAt, into: &out)
            }
        }
        if accepted > 0 { out.counters["accepted_readings", default: 0] += accepted }
        if held > 0 { out.counters["held_readings", default: 0] += held }
    }

    /// The totals' names, built once (not per dropped reading).
    private static let counterName: [FilterReason: String] =
        Dictionary(uniqueKeysWithValues: FilterReason.allCases.map { ($0, "filtered_\($0.rawValue)") })

    /// Completed downsample buckets (`all`: every open one, at shutdown).
    mutating func flushFilters(now: Int64, all: Bool, into out: inout SealInput) {
        let emitted = all ? filters.flushAll() : filters.flushDue(now: now)
        if emitted.isEmpty { return }
        out.readings.append(contentsOf: emitted)
        out.counters["accepted_readings", default: 0] += Int64(emitted.count)
        out.counters["downsampled_readings", default: 0] += Int64(emitted.count)
    }

    private func deadLetter(_ message: MQTTMessage, _ reason: String, at: Int64, into out: inout SealInput) {
        out.deadLetters.append(DeadLetter(at: at, topic: message.topic, payload: message.payload, reason: reason))
        out.counters["dead_letters", default: 0] += 1
    }
}
