import Testing
import WeirCore

/// Vectors are the examples of RFC 8428 §5.1, decoded for a topic with a `{device}` level
/// (`d1`) and for one without (device from the base name).
@Suite("senml payloads")
struct PayloadSenMLTests {
    let now: Int64 = 1_732_540_999_000
    let decoder = SenMLPayloadDecoder()

    func decode(_ text: String, device: String? = "d1") -> DecodedPayload {
        decoder.decode(Array(text.utf8), context: PayloadContext(topic: "t", device: device, receivedAt: now))
    }

    @Test func rfcSingleDataPoint() {
        let text = #"[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]"#
        let out = decode(text)
        #expect(out.readings == [Reading(device: "d1", metric: "urn:dev:ow:10e2073a01080063", ts: now, value: 23.1)])
        #expect(out.stampedWithReceiveTime == 1)
        // Without a topic device and without a base name there is no device.
        let bare = decode(text, device: nil)
        #expect(bare.readings.isEmpty)
        #expect(bare.problems.map(\.reason) == ["record 0 ('urn:dev:ow:10e2073a01080063'): no device (the topic has no {device} level and the pack no base name 'bn')"])
    }

    @Test func rfcMultipleDataPoints() {
        let text = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
          {"n":"current","u":"A","v":1.2}
        ]
        """#
        let out = decode(text, device: nil)
        #expect(out.problems.isEmpty)
        #expect(out.readings == [
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "voltage", ts: now, value: 120.1),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "current", ts: now, value: 1.2),
        ])
        #expect(out.stamped == [0, 1])
    }

    @Test func rfcMultipleDataPointsWithBaseTime() {
        let text = #"""
        [
          {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
           "bu":"A","bver":5,
           "n":"voltage","u":"V","v":120.1},
          {"n":"current","t":-5,"v":1.2},
          {"n":"current","t":-4,"v":1.3},
          {"n":"current","t":-3,"v":1.4},
          {"n":"current","t":-2,"v":1.5},
          {"n":"current","t":-1,"v":1.6},
          {"n":"current","v":1.7}
        ]
        """#
        let out = decode(text)
        #expect(out.problems.isEmpty)
        let bt: Int64 = 1_276_020_076_001
        #expect(out.readings == [
            Reading(device: "d1", metric: "voltage", ts: bt, value: 120.1),
            Reading(device: "d1", metric: "current", ts: bt - 5000, value: 1.2),
            Reading(device: "d1", metric: "current", ts: bt - 4000, value: 1.3),
            Reading(device: "d1", metric: "current", ts: bt - 3000, value: 1.4),
            Reading(device: "d1", metric: "current", ts: bt - 2000, value: 1.5),
            Reading(device: "d1", metric: "current", ts: bt - 1000, value: 1.6),
            Reading(device: "d1", metric: "current", ts: bt, value: 1.7),
        ])
        #expect(out.stampedWithReceiveTime == 0)
        #expect(decode(text, device: nil).readings.allSatisfy { $0.device == "urn:dev:ow:10e2073a0108006" })
    }

    @Test func rfcMultipleMeasurementsNamedByUnit() {
        let text = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
           "bu":"%RH","v":20},
          {"u":"lon","v":24.30621},
          {"u":"lat","v":60.07965},
          {"t":60,"v":20.3},
          {"u":"lon","t":60,"v":24.30622},
          {"u":"lat","t":60,"v":60.07965},
          {"t":120,"v":20.7},
          {"u":"lon","t":120,"v":24.30623},
          {"u":"lat","t":120,"v":60.07966},
          {"u":"%EL","t":150,"v":98},
          {"t":180,"v":21.2},
          {"u":"lon","t":180,"v":24.30628},
          {"u":"lat","t":180,"v":60.07967}
        ]
        """#
        let out = decode(text, device: nil)
        let bt: Int64 = 1_320_067_464_000
        #expect(out.readings == [
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lon", ts: bt, value: 24.30621),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lat", ts: bt, value: 60.07965),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lon", ts: bt + 60_000, value: 24.30622),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lat", ts: bt + 60_000, value: 60.07965),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lon", ts: bt + 120_000, value: 24.30623),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lat", ts: bt + 120_000, value: 60.07966),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lon", ts: bt + 180_000, value: 24.30628),
            Reading(device: "urn:dev:ow:10e2073a01080063", metric: "lat", ts: bt + 180_000, value: 60.07967),
        ])
        // '%RH' and '%EL' cannot be metric names: those records are problems, by number.
        #expect(out.problems.map(\.reason) == [
            "record 0: no name ('n') and its unit '%RH' is not a valid metric name",
            "record 3: no name ('n') and its unit '%RH' is not a valid metric name",
            "record 6: no name ('n') and its unit '%RH' is not a valid metric name",
            "record 9: no name ('n') and its unit '%EL' is not a valid metric name",
            "record 10: no name ('n') and its unit '%RH' is not a valid metric name",
        ])
    }

    @Test func rfcResolvedData() {
        let text = #"""
        [
          {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,"v":20},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,"v":24.30621},
          {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,"v":98}
        ]
        """#
        let out = decode(text)
        #expect(out.problems.isEmpty)
        // The name is the metric; units are not part of it.
        #expect(out.readings == [
            Reading(device: "d1", metric: "urn:dev:ow:10e2073a01080063", ts: 1_320_067_464_000, value: 20),
            Reading(device: "d1", metric: "urn:dev:ow:10e2073a01080063", ts: 1_320_067_464_000, value: 24.30621),
            Reading(device: "d1", metric: "urn:dev:ow:10e2073a01080063", ts: 1_320_067_614_000, value: 98),
        ])
    }

    @Test func rfcMultipleDataTypes() {
        let text = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
          {"n":"label","vs":"Machine Room"},
          {"n":"open","vb":false},
          {"n":"nfc-reader","vd":"aGkgCg"}
        ]
        """#
        let out = decode(text)
        #expect(out.readings == [
            Reading(device: "d1", metric: "temp", ts: now, value: 23.1),
            Reading(device: "d1", metric: "open", ts: now, value: 0),
        ])
        #expect(out.problems.map(\.reason) == [
            "record 1 ('label'): string value ('vs') is not numeric",
            "record 3 ('nfc-reader'): data value ('vd') is not numeric",
        ])
    }

    @Test func rfcCollectionOfResourcesAndActuator() {
        let collection = #"""
        [
          {"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":27.2},
          {"n":"humidity","u":"%RH","v":80}
        ]
        """#
        let out = decode(collection, device: nil)
        #expect(out.readings == [
            Reading(device: "2001:db8::2", metric: "temperature", ts: 1_320_078_429_000, value: 27.2),
            Reading(device: "2001:db8::2", metric: "humidity", ts: 1_320_078_429_000, value: 80),
        ])
        // A record holding only base fields yields nothing and is no problem.
        let actuator = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063:"},
          {"n":"temp","u":"Cel","v":23.1},
          {"n":"heat","u":"/","v":1},
          {"n":"fan","u":"/","v":0}
        ]
        """#
        let act = decode(actuator, device: nil)
        #expect(act.problems.isEmpty)
        #expect(act.readings.map(\.metric) == ["temp", "heat", "fan"])
        #expect(act.readings.allSatisfy { $0.device == "urn:dev:ow:10e2073a01080063" })
    }

    @Test func baseValueSumAndRelativeTimes() {
        let text = #"""
        [{"bn":"dev-9/","bv":100,"bs":1000,"bt":-10,"n":"energy","v":5,"s":20},
         {"n":"energy","v":-1,"t":2.0004}]
        """#
        let out = decode(text, device: nil)
        #expect(out.problems.isEmpty)
        #expect(out.readings == [
            Reading(device: "dev-9", metric: "energy", ts: now - 10_000, value: 105),
            Reading(device: "dev-9", metric: "energy.sum", ts: now - 10_000, value: 1020),
            Reading(device: "dev-9", metric: "energy", ts: now - 8_000, value: 99),
        ])
    }

    @Test func timesRoundToTheNearestMillisecond() {
        let out = decode(#"[{"n":"a","t":1732540000.1234,"v":1},{"n":"b","t":1732540000.1236,"v":1}]"#)
        #expect(out.readings.map(\.ts) == [1_732_540_000_123, 1_732_540_000_124])
    }

    @Test func packLevelProblems() {
        let newer = decode(#"[{"bver":11,"n":"a","v":1}]"#)
        #expect(newer.readings.isEmpty)
        #expect(newer.problems.map(\.reason) == ["record 0: SenML version 11.0 is not supported (up to 10)"])
        let mustUnderstand = decode(#"[{"n":"a","v":1},{"n":"b","v":2,"x_":3}]"#)
        #expect(mustUnderstand.readings.isEmpty)
        #expect(mustUnderstand.problems.map(\.reason) == ["record 1: must-understand field 'x_' is not supported"])
    }

    @Test(arguments: [
        (#"[{"n":"a","v":"1"}]"#, "record 0 ('a'): field 'v' is not a number"),
        (#"[{"n":"a"}]"#, "record 0 ('a'): no value ('v', 'vb' or 's')"),
        (#"[{"n":"a b","v":1}]"#, "record 0 ('a b'): metric contains ' ' (only [A-Za-z0-9_.:/-] allowed)"),
        (#"[{"n":"a","v":1e400}]"#, "record 0 ('a'): value is inf (a finite number expected)"),
        (#"[{"n":"a","vb":1}]"#, "record 0 ('a'): field 'vb' is not a boolean"),
        (#"[{"n":"a","t":1e300,"v":1}]"#, "record 0 ('a'): time 1e+300 s is out of range"),
        (#"[3]"#, "record 0: not an object"),
        (#"{"n": "a""#, "not valid JSON: byte 9: expected ',' or '}' in a record but the payload ends"),
        ("", "empty payload (a SenML pack, a JSON array, expected)"),
        ("42", "not valid JSON: byte 0: expected a SenML pack (a JSON array) but found '4'"),
    ])
    func malformed(text: String, reason: String) {
        let out = decode(text)
        #expect(out.readings.isEmpty)
        #expect(out.problems.map(\.reason) == [reason])
    }

    @Test func badRecordsDoNotSinkGoodOnes() {
        let out = decode(#"[{"bn":"x:","n":"a","v":1},{"n":"b","vs":"x"},{"n":"c","v":3}]"#)
        #expect(out.readings.map(\.metric) == ["a", "c"])
        #expect(out.problems.count == 1)
    }
}
