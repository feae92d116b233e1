import Testing
import WeirCore

/// `decode(_:context:appendingTo:)`, which the edge uses to decode a hand-over of messages
/// into one buffer: it appends exactly what `decode(_:context:)` returns, leaves the
/// readings already in the buffer alone, numbers `stamped` in the buffer, and appends
/// nothing for a payload that fails as a whole.
@Suite("decoding into a caller's buffer")
struct PayloadAppendTests {
    static let now: Int64 = 1_732_540_999_000
    static let context = PayloadContext(topic: "t/d1", device: "d1", receivedAt: now)
    /// Readings already in the buffer (another payload's).
    static let earlier = [Reading(device: "x", metric: "a", ts: 1_000_000_000_000, value: 1),
                          Reading(device: "x", metric: "b", ts: 1_000_000_000_001, value: 2)]

    /// Payloads that decode to readings (some stamped with the receive time, some with
    /// problems beside them), and payloads that fail as a whole, for each format.
    static let cases: [(String, any PayloadDecoder, String, wholeFailure: Bool)] = [
        ("json object", JSONPayloadDecoder(), #"{"ts": 1732540000000, "temp": 21.5, "hum": 40}"#, false),
        ("json array, one without ts, one bad element", JSONPayloadDecoder(),
         #"[{"ts": 1732540000000, "temp": 21.5}, {"temp": 22}, 7, {"ts": 1732540001000, "hum": 41}]"#, false),
        ("json cut off after a good object", JSONPayloadDecoder(), #"[{"ts": 1732540000000, "temp": 21.5}, {"temp": "#, true),
        ("json bad escape after a good object", JSONPayloadDecoder(), #"[{"ts": 1732540000000, "temp": 21.5}, {"a": "\q"}]"#, true),
        ("json empty", JSONPayloadDecoder(), "", true),
        ("senml pack, relative and absent times", SenMLPayloadDecoder(),
         #"[{"bt": 1732540000, "n": "temp", "v": 21.5}, {"n": "hum", "t": 1, "v": 40}, {"n": "state", "vs": "on"}]"#, false),
        ("senml pack without times", SenMLPayloadDecoder(), #"[{"n": "temp", "v": 21.5}, {"n": "hum", "v": 40}]"#, false),
        ("senml unsupported version after a good record", SenMLPayloadDecoder(),
         #"[{"n": "temp", "v": 21.5, "bt": 1732540000}, {"bver": 99, "n": "hum", "v": 1}]"#, true),
        ("senml cut off", SenMLPayloadDecoder(), #"[{"n": "temp", "v": 21.5}, {"n": "#, true),
        ("line, two lines, one without a time, one bad", LinePayloadDecoder(precision: .milliseconds),
         "env temp=21.5,hum=40i 1732540000000\nenv temp=22\nenv temp=\"x\" 1732540001000", false),
    ]

    @Test("appends what decode(_:context:) returns, after the readings already there",
          arguments: cases.indices)
    func appendsAfterEarlierReadings(_ index: Int) {
        let (name, decoder, text, wholeFailure) = Self.cases[index]
        let payload = Array(text.utf8)
        let alone = decoder.decode(payload, context: Self.context)
        var buffer = Self.earlier
        let report = decoder.decode(payload, context: Self.context, appendingTo: &buffer)
        #expect(Array(buffer.prefix(2)) == Self.earlier, "\(name): earlier readings changed")
        #expect(Array(buffer.dropFirst(2)) == alone.readings, "\(name)")
        #expect(report.problems == alone.problems, "\(name)")
        #expect(report.stamped == alone.stamped.map { $0 + 2 }, "\(name): stamped must index the buffer")
        if wholeFailure {
            // Nothing of it is taken, not even the readings decoded before the failure.
            #expect(buffer == Self.earlier, "\(name)")
            #expect(report.problems.count == 1, "\(name)")
        } else {
            #expect(!alone.readings.isEmpty, "\(name): the vector must decode to readings")
        }
    }

    @Test("the vectors cover readings stamped with the receive time and problems beside readings")
    func vectorsCoverTheCases() {
        var stamped = 0
        var partial = 0
        for (_, decoder, text, wholeFailure) in Self.cases where !wholeFailure {
            let out = decoder.decode(Array(text.utf8), context: Self.context)
            stamped += out.stamped.count
            if !out.problems.isEmpty && !out.readings.isEmpty { partial += 1 }
        }
        #expect(stamped >= 4)
        #expect(partial >= 3)
    }

    @Test("payloads decoded one after another into one buffer give each payload's readings in order")
    func manyPayloadsIntoOneBuffer() {
        let decoder = JSONPayloadDecoder()
        var buffer: [Reading] = []
        var expected: [Reading] = []
        var expectedStamped: [Int] = []
        for i in 0..<50 {
            let text = i % 7 == 3 ? #"{"temp": "#
                : i % 5 == 0 ? #"{"temp": \#(i), "hum": \#(i + 1)}"#
                : #"{"ts": \#(1_732_540_000_000 + Int64(i)), "temp": \#(i)}"#
            let context = PayloadContext(topic: "t/d\(i % 4)", device: "d\(i % 4)", receivedAt: Self.now)
            let alone = decoder.decode(Array(text.utf8), context: context)
            expectedStamped += alone.stamped.map { $0 + expected.count }
            expected += alone.readings
            let report = decoder.decode(Array(text.utf8), context: context, appendingTo: &buffer)
            #expect(report.problems == alone.problems)
            #expect(report.stamped == alone.stamped.map { $0 + expected.count - alone.readings.count })
        }
        #expect(buffer == expected)
        // 7 payloads cut off (i % 7 == 3); 8 with two metrics and no time (i % 5 == 0,
        // but not 10 or 45); 35 with one timed metric.
        #expect(expected.count == 35 + 2 * 8)
        #expect(expectedStamped.count == 2 * 8)
    }
}
