import Testing
import WeirCore

@Suite("line-protocol payloads")
struct PayloadLineTests {
    let now: Int64 = 1_732_540_999_000

    func decode(_ text: String, device: String? = "d1", precision: TimestampUnit = .nanoseconds) -> DecodedPayload {
        LinePayloadDecoder(precision: precision).decode(Array(text.utf8), context: PayloadContext(topic: "t", device: device, receivedAt: now))
    }

    @Test func fieldTypes() {
        let out = decode("weather,site=roof temp=21.5,hum=40i,count=7u,ok=true,bad=F,exp=-1.5e3 1732540000123456789")
        #expect(out.problems.isEmpty)
        let ts: Int64 = 1_732_540_000_123
        #expect(out.readings == [
            Reading(device: "d1", metric: "weather.temp", ts: ts, value: 21.5),
            Reading(device: "d1", metric: "weather.hum", ts: ts, value: 40),
            Reading(device: "d1", metric: "weather.count", ts: ts, value: 7),
            Reading(device: "d1", metric: "weather.ok", ts: ts, value: 1),
            Reading(device: "d1", metric: "weather.bad", ts: ts, value: 0),
            Reading(device: "d1", metric: "weather.exp", ts: ts, value: -1500),
        ])
    }

    @Test(arguments: ["t", "T", "true", "True", "TRUE"], ["f", "F", "false", "False", "FALSE"])
    func booleans(yes: String, no: String) {
        let out = decode("m a=\(yes),b=\(no) 0")
        #expect(out.readings.map(\.value) == [1, 0])
    }

    @Test func escapes() {
        // Escaped space and comma in the measurement, escaped '=' and space in a field key:
        // the names come out unescaped (and then break the name alphabet, which says so).
        let out = decode(#"my\ wea\,ther,tag\ key=tag\,value\=1 t\=x\ y=1 1000000000000000000"#)
        #expect(out.readings.isEmpty)
        #expect(out.problems.map(\.reason) == [
            "line 1: field 'my wea,ther.t=x y': metric contains ' ' (only [A-Za-z0-9_.:/-] allowed)",
        ])
        // In a measurement only ',' and ' ' are escapable: "\=" stays as written. Escaped
        // quotes, commas and spaces inside a string field do not end it.
        let quoted = decode(#"cpu\=x,host=a\ b load=0.5,name="a \"quoted\", string",idle=3 1000000000000000000"#)
        #expect(quoted.readings.isEmpty)
        #expect(quoted.problems.map(\.reason) == [
            "line 1: field 'name' is a string, not a number",
            #"line 1: field 'cpu\=x.load': metric contains '\' (only [A-Za-z0-9_.:/-] allowed)"#,
            #"line 1: field 'cpu\=x.idle': metric contains '\' (only [A-Za-z0-9_.:/-] allowed)"#,
        ])
        // An escaped comma in the device tag's value is part of the value.
        let tagged = decode(#"m,device=pump\,7 a=1 1000000000000000000"#, device: nil)
        #expect(tagged.problems.map(\.reason) == ["line 1: field 'm.a': device contains ',' (only [A-Za-z0-9_.:/-] allowed)"])
        let plain = decode(#"env\ x,device=pump-7 a=1 1000000000000000000"#, device: nil)
        #expect(plain.problems.count == 1)
    }

    @Test func stringFieldsAreProblemsOtherFieldsCount() {
        let out = decode(#"door state="open, really",angle=12.5 1732540000000000000"#)
        #expect(out.readings == [Reading(device: "d1", metric: "door.angle", ts: 1_732_540_000_000, value: 12.5)])
        #expect(out.problems.map(\.reason) == ["line 1: field 'state' is a string, not a number"])
    }

    @Test func deviceTagWhenTopicHasNone() {
        let text = """
        env,device=pump-1 rpm=1200 1732540000000000000
        env,device=pump-2,zone=a rpm=900 1732540000000000000
        env rpm=3 1732540000000000000
        """
        let out = decode(text, device: nil)
        #expect(out.readings.map(\.device) == ["pump-1", "pump-2"])
        #expect(out.problems.map(\.reason) == ["line 3: no device (the topic has no {device} level and the line no 'device' tag)"])
        // The topic's device wins over the tag.
        #expect(decode(text).readings.map(\.device) == ["d1", "d1", "d1"])
    }

    @Test(arguments: [
        (TimestampUnit.seconds, "1732540000", Int64(1_732_540_000_000)),
        (.milliseconds, "1732540000123", 1_732_540_000_123),
        (.microseconds, "1732540000123500", 1_732_540_000_124),
        (.nanoseconds, "1732540000123499999", 1_732_540_000_123),
    ])
    func precisions(unit: TimestampUnit, ts: String, expected: Int64) {
        let out = decode("m v=1 \(ts)", precision: unit)
        #expect(out.readings.map(\.ts) == [expected])
    }

    @Test func missingTimestampGetsReceiveTime() {
        let out = decode("m a=1,b=2\nm c=3 1732540000000000000")
        #expect(out.readings.map(\.ts) == [now, now, 1_732_540_000_000])
        #expect(out.stamped == [0, 1])
    }

    @Test func commentsBlankLinesAndCRLF() {
        let out = decode("# header\r\n\r\n  m a=1 1000000000000000000\r\nm b=2 2000000000000000000\r\n")
        #expect(out.problems.isEmpty)
        #expect(out.readings.map(\.metric) == ["m.a", "m.b"])
    }

    @Test func badLinesAreNamedGoodLinesDecode() {
        let text = """
        m a=1 1000000000000000000
        m
        m a= 1000000000000000000
        m,tag a=1
        m a=abc
        m a=1 12x
        m a="unterminated
        m a=1i2
        m a=99999999999999999999i
        ,t=1 a=1
        m a=2 3000000000000000000
        m a=1 99999999999999999999
        """
        let out = decode(text)
        #expect(out.readings.map(\.value) == [1, 2])
        #expect(out.problems.map(\.reason) == [
            "line 2: expected a space and fields after 'm'",
            "line 3: field 'a': '' is not a number, integer or boolean",
            "line 4: tag 'tag' has no '=value'",
            "line 5: field 'a': 'abc' is not a number, integer or boolean",
            "line 6: '12x' is not a timestamp (an integer in ns expected)",
            "line 7: field 'a': unterminated string",
            "line 8: field 'a': '1i2' is not a number, integer or boolean",
            "line 9: field 'a': '99999999999999999999i' is not a number, integer or boolean",
            "line 10: the measurement name is missing",
            "line 12: timestamp is too large",
        ])
    }

    @Test func emptyPayloadIsAProblem() {
        #expect(decode("").problems.map(\.reason) == ["empty payload (no line-protocol lines)"])
        #expect(decode("# only a comment\n").problems.count == 1)
    }
}
