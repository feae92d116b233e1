import Testing
import WeirCore

@Suite("json payloads")
struct PayloadJSONTests {
    let decoder = JSONPayloadDecoder()
    let context = PayloadContext(topic: "devices/d1/telemetry", device: "d1", receivedAt: 1_732_540_999_000)

    func decode(_ text: String, _ decoder: JSONPayloadDecoder? = nil, device: String? = "d1") -> DecodedPayload {
        let ctx = PayloadContext(topic: "t", device: device, receivedAt: context.receivedAt)
        return (decoder ?? self.decoder).decode(Array(text.utf8), context: ctx)
    }

    @Test func designExample() {
        let out = decode(#"{"ts": 1732540000123, "temp": 21.5, "hum": 40}"#)
        #expect(out.problems.isEmpty)
        #expect(out.readings == [
            Reading(device: "d1", metric: "temp", ts: 1_732_540_000_123, value: 21.5),
            Reading(device: "d1", metric: "hum", ts: 1_732_540_000_123, value: 40),
        ])
        #expect(out.stampedWithReceiveTime == 0)
    }

    /// On a topic without a device level each object names its device; the decoder says
    /// which readings it stamped, so the edge credits each to its own device — also when
    /// another device's own time happens to be the receive millisecond.
    @Test func stampedReadingsAreListedByPosition() {
        let now = context.receivedAt
        let out = decode(#"""
        [{"device": "a", "temp": 1, "hum": 2},
         {"device": "b", "ts": \#(now), "temp": 3},
         {"device": "c", "temp": 4},
         {"device": "d", "ts": 1732540000000, "temp": "bad", "hum": 5}]
        """#, device: nil)
        #expect(out.readings.map(\.device) == ["a", "a", "b", "c", "d"])
        #expect(out.readings.map(\.ts) == [now, now, now, now, 1_732_540_000_000])
        #expect(out.stamped == [0, 1, 3])
        #expect(out.stamped.map { out.readings[$0].device } == ["a", "a", "c"])
        #expect(out.stampedWithReceiveTime == 3)
    }

    @Test func arrayBooleansNestingAndIgnoredFields() {
        let out = decode(#"""
        [{"ts": 1000000000000, "on": true, "off": false, "unit": "C", "x": null, "list": [1, 2],
          "door": {"open": 1, "lock": {"state": false}}},
         {"temp": -1.5e2}]
        """#)
        #expect(out.problems.isEmpty)
        #expect(out.readings == [
            Reading(device: "d1", metric: "on", ts: 1_000_000_000_000, value: 1),
            Reading(device: "d1", metric: "off", ts: 1_000_000_000_000, value: 0),
            Reading(device: "d1", metric: "door.open", ts: 1_000_000_000_000, value: 1),
            Reading(device: "d1", metric: "door.lock.state", ts: 1_000_000_000_000, value: 0),
            Reading(device: "d1", metric: "temp", ts: context.receivedAt, value: -150),
        ])
        #expect(out.stampedWithReceiveTime == 1)
    }

    @Test(arguments: [
        (#"{"ts": "2024-11-25T13:06:40.123Z", "v": 1}"#, Int64(1_732_540_000_123)),
        (#"{"ts": "2024-11-25T15:06:40.123+02:00", "v": 1}"#, 1_732_540_000_123),
        (#"{"ts": "2024-11-25t08:36:40.1234-04:30", "v": 1}"#, 1_732_540_000_123),
        (#"{"ts": "2024-11-25 13:06:40Z", "v": 1}"#, 1_732_540_000_000),
        (#"{"ts": "2024-11-25T13:06:40.9996Z", "v": 1}"#, 1_732_540_001_000),
    ])
    func rfc3339Times(text: String, expected: Int64) {
        let out = decode(text)
        #expect(out.problems.isEmpty)
        #expect(out.readings.first?.ts == expected)
    }

    @Test(arguments: [
        (TimestampUnit.seconds, "1732540000", Int64(1_732_540_000_000)),
        (.seconds, "1732540000.1235", 1_732_540_000_124),
        (.milliseconds, "1732540000123", 1_732_540_000_123),
        (.microseconds, "1732540000123499", 1_732_540_000_123),
        (.microseconds, "1732540000123500", 1_732_540_000_124),
        (.nanoseconds, "1732540000123456789", 1_732_540_000_123),
        (.nanoseconds, "1.7325400001235e18", 1_732_540_000_124),
    ])
    func epochUnits(unit: TimestampUnit, ts: String, expected: Int64) {
        let out = decode(#"{"ts": \#(ts), "v": 2}"#, JSONPayloadDecoder(tsUnit: unit))
        #expect(out.problems.isEmpty)
        #expect(out.readings.first?.ts == expected)
    }

    @Test func deviceFromFieldWhenTopicHasNone() {
        let out = decode(#"[{"device": "pump-7", "ts": 5000000000000, "rpm": 1200}, {"rpm": 3}]"#, device: nil)
        #expect(out.readings == [Reading(device: "pump-7", metric: "rpm", ts: 5_000_000_000_000, value: 1200)])
        #expect(out.problems.map(\.reason) == [#"element 1: no device (the topic has no {device} level and the object no "device" field)"#])
        // With a topic device, the field is an ordinary one.
        let topic = decode(#"{"device": "other", "rpm": 1}"#)
        #expect(topic.readings.map(\.device) == ["d1"])
        #expect(decode(#"{"device": 7, "rpm": 1}"#).readings.map(\.metric) == ["device", "rpm"])
        #expect(decode(#"{"device": 7, "rpm": 1}"#, device: nil).problems.map(\.reason) == ["field 'device': a string expected"])
    }

    @Test func numbersAreExact() {
        let out = decode(#"{"a": 0.1, "b": 123456789.123456789, "c": 9007199254740993, "d": -0.0, "e": 1e-7, "f": 2.5E+3}"#)
        #expect(out.readings.map(\.value) == [0.1, 123456789.123456789, 9007199254740992, 0, 1e-7, 2500])
    }

    @Test func problemsNameElementAndField() {
        let out = decode(#"[{"ts": 1732540000123, "temp": 1e999, "ok": 1}, 7, {"ts": "yesterday", "x": 1}, {"bad name": 2, "fine": 3}, {"ts": true, "x": 1}]"#)
        #expect(out.readings.map(\.metric) == ["ok", "fine"])
        #expect(out.problems.map(\.reason) == [
            "element 0: field 'temp': value is inf (a finite number expected)",
            "element 1: not an object",
            "element 2: field 'ts': 'yesterday' is not an RFC 3339 time",
            "element 3: field 'bad name': metric contains ' ' (only [A-Za-z0-9_.:/-] allowed)",
            "element 4: field 'ts': true is not a time",
        ])
    }

    /// Each malformed payload gives one problem that says where: the byte offset of the
    /// syntax error (`not valid JSON: byte N: ...`), or the documented message for an empty
    /// payload.
    @Test(arguments: [
        ("", "empty payload (a JSON object or array expected)"),
        ("   ", "empty payload (a JSON object or array expected)"),
        ("{", "not valid JSON: byte 1: expected a string but the payload ends"),
        ("[", "not valid JSON: byte 1: expected a value but the payload ends"),
        ("{\"a\": }", "not valid JSON: byte 6: expected a value but found '}'"),
        ("{\"a\" 1}", "not valid JSON: byte 5: expected ':' after a key but found '1'"),
        ("[{\"a\": 1},]", "not valid JSON: byte 10: expected a value but found ']'"),
        ("{\"a\": 01}", "not valid JSON: byte 7: number with a leading zero"),
        ("{\"a\": 1} x", "not valid JSON: byte 9: unexpected data after the JSON value"),
        ("{\"a\": tru}", "not valid JSON: byte 6: expected a value but found 't'"),
        ("\"just a string\"", "not valid JSON: byte 0: expected a JSON object or array but found '\"'"),
        ("{\"a\": 1.}", "not valid JSON: byte 8: expected a digit after the decimal point"),
        ("{\"a\": -}", "not valid JSON: byte 7: expected a digit but found '}'"),
    ])
    func malformedGivesOneProblemNoReadings(text: String, reason: String) {
        let out = decode(text)
        #expect(out.readings.isEmpty)
        #expect(out.problems.map(\.reason) == [reason])
    }

    /// A string value that is skipped (not a metric) is still checked like a key: a bad
    /// escape or a raw control byte makes the payload invalid JSON, one problem naming the
    /// byte, and none of its other fields become readings.
    @Test(arguments: [
        (#"{"a": "\q"}"#, #"not valid JSON: byte 8: unknown escape '\q'"#),
        (#"{"a": "\q", "b": 1}"#, #"not valid JSON: byte 8: unknown escape '\q'"#),
        (#"{"a": ["x", "\q"], "b": 1}"#, #"not valid JSON: byte 14: unknown escape '\q'"#),
        (#"[{"b": 1}, {"a": "\q"}]"#, #"not valid JSON: byte 19: unknown escape '\q'"#),
        (#"{"a": "\u12", "b": 1}"#, #"not valid JSON: byte 11: bad hex digit in \u escape"#),
        (#"{"a": "\u12G4", "b": 1}"#, #"not valid JSON: byte 11: bad hex digit in \u escape"#),
        (#"{"a": "\u12"#, #"not valid JSON: byte 9: truncated \u escape"#),
        (#"{"a": "\ud800", "b": 1}"#, #"not valid JSON: byte 13: lone surrogate in \u escape"#),
        (#"{"a": "\ud800\u0041", "b": 1}"#, #"not valid JSON: byte 19: lone surrogate in \u escape"#),
        (#"{"a": "\udc00", "b": 1}"#, #"not valid JSON: byte 13: lone surrogate in \u escape"#),
        (#"{"a": "\"#, "not valid JSON: byte 8: unterminated escape"),
        ("{\"a\": \"x\ty\", \"b\": 1}", "not valid JSON: byte 8: control byte 0x9 inside a string"),
        ("{\"a\": \"\u{01}\", \"b\": 1}", "not valid JSON: byte 7: control byte 0x1 inside a string"),
        ("{\"a\": \"x\ny\", \"b\": 1}", "not valid JSON: byte 8: control byte 0xa inside a string"),
    ])
    func badStringInASkippedValueIsASyntaxError(text: String, reason: String) {
        let out = decode(text)
        #expect(out.readings.isEmpty)
        #expect(out.problems.map(\.reason) == [reason])
    }

    /// Keys are decoded and values skipped, yet both reject the same strings with the same
    /// words: `{S: 1}` fails 5 bytes earlier than `{"a": S, "b": 1}`.
    @Test(arguments: [
        (#""\q""#, 2, "unknown escape '\\q'"),
        (#""\u12""#, 5, "bad hex digit in \\u escape"),
        (#""\ud800""#, 7, "lone surrogate in \\u escape"),
        (#""\udc00x""#, 7, "lone surrogate in \\u escape"),
        ("\"x\u{1F}\"", 2, "control byte 0x1f inside a string"),
    ])
    func keysAndSkippedValuesRejectTheSameStrings(string: String, offset: Int, message: String) {
        #expect(decode("{\(string): 1}").problems.map(\.reason) == ["not valid JSON: byte \(1 + offset): \(message)"])
        #expect(decode(#"{"a": \#(string), "b": 1}"#).problems.map(\.reason) == ["not valid JSON: byte \(6 + offset): \(message)"])
    }

    /// Every escape JSON allows, in values that are skipped, leaves the numeric field read.
    @Test func validEscapesInASkippedValueStillDecode() {
        let texts = [
            #"{"a": "\\\"\/\b\f\n\r\t\u00e9", "b": 1}"#,
            #"{"a": "\ud83d\ude00 \u00E9\uFFFF", "b": 1}"#,
            #"{"a": ["\\", {"k\"": "\"\t"}], "b": 1}"#,
            #"[{"unit": "\u00b0C", "b": 1}]"#,
        ]
        for text in texts {
            let out = decode(text)
            #expect(out.problems.isEmpty, "\(text): \(out.problems)")
            #expect(out.readings == [Reading(device: "d1", metric: "b", ts: context.receivedAt, value: 1)], "\(text)")
        }
    }

    @Test func syntaxErrorNamesTheByte() {
        let out = decode(#"{"temp": 21.5,, "hum": 3}"#)
        #expect(out.problems.map(\.reason) == ["not valid JSON: byte 14: expected a string but found ','"])
    }

    @Test func deepNestingIsAProblemNotACrash() {
        let deepObject = String(repeating: #"{"a":"#, count: 100_000) + "1" + String(repeating: "}", count: 100_000)
        let deepArray = #"{"a": "# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        for text in [deepObject, deepArray] {
            let out = decode(text)
            #expect(out.readings.isEmpty)
            #expect(out.problems.first?.reason.contains("nested deeper than") == true)
        }
        // Moderate nesting is flattened.
        let ok = decode(#"{"a": {"b": {"c": {"d": 4}}}}"#)
        #expect(ok.readings.map(\.metric) == ["a.b.c.d"])
    }

    @Test func escapesInKeys() {
        let out = decode(#"{"a\/b": 1, "\u0074emp": 2, "x\ud83d\ude00": 3}"#)
        #expect(out.readings.map(\.metric) == ["a/b", "temp"])
        #expect(out.problems.count == 1)
    }

    @Test func objectWithoutMetricsIsAProblem() {
        let out = decode(#"{"ts": 1732540000123, "status": "ok"}"#)
        #expect(out.readings.isEmpty)
        #expect(out.problems.map(\.reason) == ["no metrics (no numeric or boolean field)"])
    }
}
