import Foundation
import Testing
import WeirCore
@testable import WeirEdge
import WeirMQTT
import WeirTestSupport

/// The edge decodes a hand-over of messages (up to 64, as the reader takes them from the
/// broker's queue) into one buffer and filters it in one call. What it accepts, dead-letters
/// and counts must be exactly what processing the same messages one at a time gives: the
/// same readings in the same order, the same dead letters in the same order, the same
/// totals and per-device counts.
@Suite("weir-edge hand-overs")
struct IngestHandOverTests {
    static let receivedAt: Int64 = 1_732_540_600_000

    static func configuration(onBad: String, in dir: TemporaryDirectory) async throws -> EdgeConfiguration {
        let file = try dir.write("edge.yaml", """
            gateway: gw-1
            mqtt:
              subscriptions:
                - topic: j/{device}
                  format: json
                - topic: s/{device}
                  format: senml
                - topic: l/+
                  format: line
                  precision: ms
            max_clock_skew: 60s
            on_bad_timestamp: \(onBad)
            filters:
              - match: "*/temp"
                range: {min: -50, max: 150}
              - match: "*/*"
                dedup: 60s
              - match: "*/temp"
                deadband: {abs: 0.5, heartbeat: 30s}
              - match: "*/hum"
                rate_limit: 1
              - match: "*/p"
                downsample: {bucket: 10s, aggregate: mean}
            """)
        return try EdgeConfiguration.load(file: file, environment: [:])
    }

    static func message(_ topic: String, _ payload: String) -> MQTTMessage {
        MQTTMessage(topic: topic, payload: Array(payload.utf8), qos: 1, mid: 0, retain: false)
    }

    /// A seeded mix of every kind of message: clean payloads of each format, repeats
    /// (dedup), small changes (deadband), bursts (rate limit), downsampled metrics, readings
    /// without a time, bad clocks in clean and mixed payloads, out-of-range values,
    /// malformed payloads, payloads with problems beside good readings, and topics no
    /// subscription matches.
    static func messages(count: Int, seed: UInt64) -> [MQTTMessage] {
        var rng = SplitMix64(seed: seed)
        var out: [MQTTMessage] = []
        var sent: [MQTTMessage] = []
        let base = receivedAt - 50_000
        for i in 0..<count {
            let device = "dev-\(Int.random(in: 0..<4, using: &rng))"
            let ts = base + Int64(i) * 100 + Int64.random(in: 0..<50, using: &rng)
            let temp = 20 + Double(Int.random(in: 0..<8, using: &rng)) * 0.25
            let m: MQTTMessage
            switch Int.random(in: 0..<20, using: &rng) {
            case 0 where !sent.isEmpty: m = sent.randomElement(using: &rng)! // a repeat
            case 1: m = message("j/\(device)", #"{"ts": \#(ts), "temp": \#(temp + 400)}"#) // out of range
            case 2: m = message("j/\(device)", #"{"temp": \#(temp), "hum": 40}"#) // no time
            case 3: m = message("j/\(device)", #"{"ts": 631152000000, "temp": \#(temp)}"#) // 1990
            case 4: m = message("j/\(device)", #"[{"ts": \#(ts), "hum": 41}, {"ts": \#(receivedAt + 600_000), "temp": 1}, 3, {"ts": \#(ts + 1), "temp": 999, "p": 2}]"#)
            case 5: m = message("j/\(device)", #"{"ts": \#(ts), "temp": "#) // cut off
            case 6: m = message("nowhere/\(device)", #"{"ts": \#(ts), "temp": 1}"#)
            case 7: m = message("s/\(device)", #"[{"bt": \#(Double(ts) / 1000), "n": "temp", "v": \#(temp)}, {"n": "p", "t": 0.001, "v": \#(temp * 10)}, {"n": "state", "vs": "on"}]"#)
            case 8: m = message("s/\(device)", #"[{"n": "hum", "v": 50}]"#) // no time
            case 9: m = message("l/x", "env,device=\(device) temp=\(temp),p=\(Int(temp))i \(ts)\nenv,device=\(device) hum=\"wet\" \(ts)\nenv,device=\(device) hum=3 20")
            case 10: m = message("l/x", "") // empty
            case 11, 12: m = message("j/\(device)", #"{"ts": \#(ts), "hum": \#(40 + i % 3), "p": \#(temp)}"#)
            default: m = message("j/\(device)", #"{"ts": \#(ts), "temp": \#(temp), "hum": 45}"#)
            }
            out.append(m)
            sent.append(m)
        }
        return out
    }

    /// Processes `messages` in hand-overs of the given sizes (cycled), then flushes.
    static func process(_ messages: [MQTTMessage], handOvers sizes: [Int], configuration: EdgeConfiguration) -> SealInput {
        var pipeline = IngestPipeline(configuration: configuration)
        var out = SealInput()
        var start = 0
        var k = 0
        while start < messages.count {
            let end = min(start + sizes[k % sizes.count], messages.count)
            pipeline.process(Array(messages[start..<end]), receivedAt: receivedAt, into: &out)
            start = end
            k += 1
        }
        pipeline.flushFilters(now: receivedAt, all: true, into: &out)
        return out
    }

    /// The edge's rules for one message, written out plainly, one reading at a time: the
    /// decoder's problems are dead letters first, then each reading in payload order is a
    /// dead letter (invalid), a dead letter or a kept note (bad clock), or goes through the
    /// filters on its own.
    static func oneReadingAtATime(_ messages: [MQTTMessage], configuration: EdgeConfiguration) -> SealInput {
        let subscriptions = configuration.mqtt.subscriptions
        let clock = ClockPolicy(maxSkewMs: configuration.clock.maxClockSkew.milliseconds, onBad: configuration.clock.onBadTimestamp)
        var chain = FilterChain(rules: configuration.filters)
        var out = SealInput()
        func deadLetter(_ m: MQTTMessage, _ reason: String) {
            out.deadLetters.append(DeadLetter(at: receivedAt, topic: m.topic, payload: m.payload, reason: reason))
            out.counters["dead_letters", default: 0] += 1
        }
        for m in messages {
            out.counters["messages", default: 0] += 1
            guard let sub = subscriptions.first(where: { $0.topic.matches(m.topic) }) else {
                deadLetter(m, "topic matches no configured subscription")
                continue
            }
            let decoder: any PayloadDecoder = switch sub.format {
            case .json: JSONPayloadDecoder(tsUnit: sub.tsUnit)
            case .senml: SenMLPayloadDecoder()
            case .line: LinePayloadDecoder(precision: sub.precision)
            }
            let decoded = decoder.decode(m.payload, context: PayloadContext(topic: m.topic, device: sub.topic.device(in: m.topic), receivedAt: receivedAt))
            for problem in decoded.problems { deadLetter(m, problem.reason) }
            for i in decoded.stamped {
                out.counters["stamped_receive_time", default: 0] += 1
                out.count("stamped_receive_time", device: decoded.readings[i].device)
            }
            for var reading in decoded.readings {
                if let problem = reading.problem {
                    deadLetter(m, problem.description)
                    continue
                }
                switch clock.check(reading, receivedAt: receivedAt) {
                case .ok: break
                case .replaced(let fixed, let note):
                    out.counters["clock_replaced", default: 0] += 1
                    out.count("clock_replaced", device: reading.device)
                    out.deadLetters.append(DeadLetter(at: receivedAt, topic: m.topic, payload: m.payload, reason: "replaced: " + note, kind: .clockNote))
                    reading = fixed
                case .rejected(let reason):
                    out.counters["bad_timestamp", default: 0] += 1
                    out.count("bad_timestamp", device: reading.device)
                    deadLetter(m, reason)
                    continue
                }
                switch chain.apply(reading) {
                case .pass(let kept):
                    out.readings.append(kept)
                    out.counters["accepted_readings", default: 0] += 1
                case .held:
                    out.counters["held_readings", default: 0] += 1
                case .dropped(let reason):
                    out.counters["filtered_\(reason.rawValue)", default: 0] += 1
                    out.count(reason.rawValue, device: reading.device)
                case .deadLetter(let reason):
                    out.counters["filtered_range", default: 0] += 1
                    out.count("range", device: reading.device)
                    deadLetter(m, reason)
                }
            }
        }
        let emitted = chain.flushAll()
        out.readings += emitted
        out.counters["accepted_readings", default: 0] += Int64(emitted.count)
        out.counters["downsampled_readings", default: 0] += Int64(emitted.count)
        return out
    }

    @Test("hand-overs of any size give what one reading at a time gives", arguments: ["reject", "receive-time"])
    func handOversMatchOneAtATime(onBad: String) async throws {
        try await withTemporaryDirectory { dir in
            let configuration = try await Self.configuration(onBad: onBad, in: dir)
            let messages = Self.messages(count: 600, seed: 42)
            let single = Self.oneReadingAtATime(messages, configuration: configuration)
            for sizes in [[1], [64], [2, 7, 64, 1, 33], [600]] {
                let batched = Self.process(messages, handOvers: sizes, configuration: configuration)
                #expect(batched.readings == single.readings, "hand-overs \(sizes)")
                #expect(batched.deadLetters == single.deadLetters, "hand-overs \(sizes)")
                #expect(batched.counters == single.counters, "hand-overs \(sizes)")
                #expect(batched.deviceCounters == single.deviceCounters, "hand-overs \(sizes)")
            }
            // The mix reaches every outcome, so the comparison covers each path.
            let c = single.counters
            #expect(c["messages"] == 600)
            for name in ["accepted_readings", "held_readings", "downsampled_readings", "dead_letters", "filtered_range",
                         "filtered_dedup", "filtered_deadband", "filtered_rate_limit", "stamped_receive_time"] {
                #expect((c[name] ?? 0) > 0, "\(name) never happened")
            }
            let reasons = single.deadLetters.map(\.reason)
            #expect(reasons.contains("topic matches no configured subscription"))
            #expect(reasons.contains { $0.hasPrefix("not valid JSON") })
            #expect(reasons.contains { $0.contains("is above the maximum 150") })
            if onBad == "reject" {
                #expect((c["bad_timestamp"] ?? 0) > 0)
                #expect(!single.deadLetters.contains { $0.kind == .clockNote })
            } else {
                #expect((c["clock_replaced"] ?? 0) > 0)
                #expect(single.deadLetters.contains { $0.kind == .clockNote })
            }
        }
    }

    @Test("a hand-over's dead letters and readings come out in message order, each message's in payload order")
    func orderWithinAHandOver() async throws {
        try await withTemporaryDirectory { dir in
            let configuration = try await Self.configuration(onBad: "receive-time", in: dir)
            let t = Self.receivedAt - 1_000
            let messages = [
                Self.message("j/a", #"{"ts": \#(t), "temp": 21}"#),
                // A bad clock between two good readings, and a value out of range after them.
                Self.message("j/b", #"[{"ts": \#(t), "temp": 22}, {"ts": 946684799999, "hum": 50}, {"ts": \#(t + 1), "hum": 51}, {"ts": \#(t + 2), "temp": 151}]"#),
                Self.message("nowhere", "{}"),
                Self.message("j/c", #"{"ts": \#(t), "temp": "#),
                Self.message("j/a", #"{"ts": \#(t + 5), "temp": -51, "hum": 10}"#),
            ]
            let out = Self.process(messages, handOvers: [5], configuration: configuration)
            #expect(out.readings == [
                Reading(device: "a", metric: "temp", ts: t, value: 21),
                Reading(device: "b", metric: "temp", ts: t, value: 22),
                Reading(device: "b", metric: "hum", ts: Self.receivedAt, value: 50),
                Reading(device: "a", metric: "hum", ts: t + 5, value: 10),
            ])
            // b's hum at t + 1 came after its replaced reading (at the receive time) in the
            // same second: the rate limit (1 per second) drops it.
            #expect(out.counters["filtered_rate_limit"] == 1)
            #expect(out.deviceCounters["b"]?["rate_limit"] == 1)
            #expect(out.deadLetters.map(\.topic) == ["j/b", "j/b", "nowhere", "j/c", "j/a"])
            #expect(out.deadLetters.map(\.kind) == [.clockNote, .deadLetter, .deadLetter, .deadLetter, .deadLetter])
            let reasons = out.deadLetters.map(\.reason)
            #expect(reasons[0].hasPrefix("replaced: b/hum: timestamp 946684799999"))
            #expect(reasons[1].hasPrefix("b/temp: value 151.0"))
            #expect(reasons[2] == "topic matches no configured subscription")
            #expect(reasons[3].hasPrefix("not valid JSON"))
            #expect(reasons[4].hasPrefix("a/temp: value -51.0"))
            #expect(out.counters["messages"] == 5)
            #expect(out.counters["dead_letters"] == 4)
            #expect(out.counters["clock_replaced"] == 1)
            #expect(out.counters["filtered_range"] == 2)
            #expect(out.counters["accepted_readings"] == 4)
        }
    }
}
