import WeirCore
import WeirMQTT

/// What happens to the messages of one hand-over from the broker's queue: pick the
/// subscription each topic matches, decode with that subscription's format, validate each
/// reading, judge its timestamp (`ClockPolicy`), run the filters, and sort the results
/// into accepted readings, dead letters and counters. Pure and synchronous; the
/// `ChunkSealer` owns one.
///
/// The payloads of a hand-over are decoded into one buffer, which goes through the
/// filters in one call: the decoders and the filters each run over dozens of messages at
/// a time instead of taking turns per message, and no array is allocated per payload.
/// The outcome is the same as processing the messages one at a time, in order: the same
/// readings in the same order, the same dead letters in the same order, the same counts.
struct IngestPipeline: Sendable {
    let subscriptions: [EdgeConfiguration.Subscription]
    private let decoders: [any PayloadDecoder]
    let clock: ClockPolicy
    var filters: FilterChain
    /// Reused for each hand-over's filter decisions.
    private var filterResults = FilterResults()
    /// The readings of the hand-over being processed that go through the filters.
    private var batch: [Reading] = []
    /// Each message of the hand-over, in order, and what to do with it once the filters ran.
    private var plans: [Plan] = []
    /// The readings of messages that are not clean, one step per reading (see `Plan`).
    private var steps: [Step] = []
    /// A buffer that one huge hand-over grew past this many readings is let go afterwards.
    private static let keptCapacity = 1 << 16

    /// One message of a hand-over.
    private struct Plan {
        let message: MQTTMessage
        /// Its dead letters before any reading's: what its payload (or its topic) lacked.
        var problems: [String]
        /// A clean message (every reading valid, every time plausible): its readings are
        /// `batch[readings]`, all filtered. Otherwise `readings` is empty and the message's
        /// readings are `steps[steps]`, in payload order.
        var readings: Range<Int>
        var steps: Range<Int>
    }

    /// What became of one reading of a message that is not clean.
    private enum Step {
        /// It went through the filters as `batch[index]`.
        case filtered(index: Int)
        /// A dead letter before the filters: invalid, or a bad timestamp rejected.
        case deadLetter(reason: String)
        /// Its timestamp was replaced by the receive time; the note is kept, and the
        /// reading's next step is `.filtered`.
        case clockNote(reason: String)
    }

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

    /// Processes the messages of one hand-over, in order, into `out`.
    mutating func process(_ messages: some Collection<MQTTMessage>, receivedAt: Int64, into out: inout SealInput) {
        if messages.isEmpty { return }
        out.counters["messages", default: 0] += Int64(messages.count)
        batch.removeAll(keepingCapacity: true)
        plans.removeAll(keepingCapacity: true)
        steps.removeAll(keepingCapacity: true)
        for message in messages {
            decode(message, receivedAt: receivedAt, into: &out)
        }
        filters.apply(batch, into: &filterResults)
        sort(receivedAt: receivedAt, into: &out)
        if batch.capacity > Self.keptCapacity { batch = [] }
        if steps.capacity > Self.keptCapacity { steps = [] }
    }

    /// Decodes one message's payload into `batch` and plans what becomes of it.
    private mutating func decode(_ message: MQTTMessage, receivedAt: Int64, into out: inout SealInput) {
        let start = batch.count
        guard let index = subscriptions.firstIndex(where: { $0.topic.matches(message.topic) }) else {
            plans.append(Plan(message: message, problems: ["topic matches no configured subscription"],
                              readings: start..<start, steps: steps.count..<steps.count))
            return
        }
        let subscription = subscriptions[index]
        let context = PayloadContext(topic: message.topic, device: subscription.topic.device(in: message.topic), receivedAt: receivedAt)
        let report = decoders[index].decode(message.payload, context: context, appendingTo: &batch)
        if !report.stamped.isEmpty { countStamped(report.stamped, into: &out) }
        let problems = report.problems.map(\.reason)
        let end = batch.count
        // The common payload — every reading valid, every timestamp plausible — goes
        // through the filters as it is; any other is checked one reading at a time,
        // keeping its dead letters (bad data, bad clocks) in payload order.
        let clean = !batch[start..<end].contains { $0.problem != nil || clock.problem(ts: $0.ts, receivedAt: receivedAt) != nil }
        if clean {
            plans.append(Plan(message: message, problems: problems, readings: start..<end, steps: steps.count..<steps.count))
            return
        }
        let firstStep = steps.count
        var kept = start
        for i in start..<end {
            let reading = batch[i]
            if let problem = reading.problem {
                steps.append(.deadLetter(reason: problem.description))
                continue
            }
            switch clock.check(reading, receivedAt: receivedAt) {
            case .ok:
                batch[kept] = reading
            case .replaced(let fixed, let note):
                out.counters["clock_replaced", default: 0] += 1
                out.count("clock_replaced", device: reading.device)
                // A note, not a dead letter: the reading is kept (with the receive time).
                steps.append(.clockNote(reason: "replaced: " + note))
                batch[kept] = fixed
            case .rejected(let reason):
                out.counters["bad_timestamp", default: 0] += 1
                out.count("bad_timestamp", device: reading.device)
                steps.append(.deadLetter(reason: reason))
                continue
            }
            steps.append(.filtered(index: kept))
            kept += 1
        }
        batch.removeSubrange(kept..<end)
        plans.append(Plan(message: message, problems: problems, readings: kept..<kept, steps: firstStep..<steps.count))
    }

    /// Counts the readings the decoder gave the receive time (they carried no time), in
    /// total and per device (the decoder says which they are).
    private func countStamped(_ stamped: [Int], into out: inout SealInput) {
        out.counters["stamped_receive_time", default: 0] += Int64(stamped.count)
        for i in stamped {
            out.count("stamped_receive_time", device: batch[i].device)
        }
    }

    /// Walks the hand-over's messages in order and sorts each reading by what the filters
    /// decided: kept, held in a bucket, dropped (counted per reason and device), or out of
    /// range (a dead letter).
    private mutating func sort(receivedAt: Int64, into out: inout SealInput) {
        var reasons = filterResults.deadLetterReasons.makeIterator()
        // The usual outcomes are tallied here and added to the counters once, not looked up
        // in the dictionary for every reading.
        var accepted: Int64 = 0
        var held: Int64 = 0
        func sort(_ i: Int, of message: MQTTMessage) {
            switch filterResults.outcomes[i] {
            case .pass:
                out.readings.append(batch[i])
                accepted += 1
            case .held:
                held += 1
            case .dropped(let reason):
                out.counters[Self.counterName[reason] ?? "filtered_\(reason.rawValue)", default: 0] += 1
                out.count(reason.rawValue, device: batch[i].device)
            case .deadLetter:
                out.counters["filtered_range", default: 0] += 1
                out.count("range", device: batch[i].device)
                deadLetter(message, reasons.next() ?? "out of range", at: receivedAt, into: &out)
            }
        }
        for plan in plans {
            for problem in plan.problems {
                deadLetter(plan.message, problem, at: receivedAt, into: &out)
            }
            for i in plan.readings { sort(i, of: plan.message) }
            for step in steps[plan.steps] {
                switch step {
                case .filtered(let i):
                    sort(i, of: plan.message)
                case .deadLetter(let reason):
                    deadLetter(plan.message, reason, at: receivedAt, into: &out)
                case .clockNote(let reason):
                    out.deadLetters.append(DeadLetter(at: receivedAt, topic: plan.message.topic, payload: plan.message.payload,
                                                      reason: reason, kind: .clockNote))
                }
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
