import Testing
import WeirCore

/// Random and mutated payloads for every decoder, from a fixed seed: no input may crash a
/// decoder, every reading that comes out must be valid, and every problem must say
/// something.
@Suite("payload fuzzing")
struct PayloadFuzzTests {
    typealias Random = SplitMix64

    static let seeds: [PayloadFormat: [String]] = [
        .json: [
            #"{"ts": 1732540000123, "temp": 21.5, "hum": 40}"#,
            #"[{"ts": "2024-11-25T13:06:40.123+02:00", "a": {"b": true, "c": [1, {"d": 2}]}, "device": "x"}, {"v": -1.5e-3}]"#,
            #"{"ts": 1.7325400001235e18, "s": "str\"\\\u00e9", "n": null, "k\/": 1}"#,
        ],
        .senml: [
            #"[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.2}]"#,
            #"[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},{"n":"label","vs":"Machine Room"},{"n":"open","vb":false},{"n":"nfc-reader","vd":"aGkgCg"}]"#,
            #"[{"bn":"d/","bv":1,"bs":2,"n":"e","v":5,"s":20,"t":1.5},{"u":"lon","v":24.30621}]"#,
        ],
        .line: [
            "weather,device=d1,site=roof temp=21.5,hum=40i,count=7u,ok=true 1732540000123456789\nweather temp=1",
            #"my\ m,tag\ k=v\,x f\=1=1.5e3,s="q\"x",b=F 1000000000000000000"# + "\r\n# c\n",
            "cpu,device=pump-7 usage=0.5,idle=-3i\n\n  m a=1 -1",
        ],
    ]

    static let fragments: [[UInt8]] = [
        "{", "}", "[", "]", "\"", "\\", ",", ":", "=", " ", "\n", "\r", "-", ".", "e", "1e999", "-0", "0.",
        "true", "null", "\\u", "\\ud800", "\u{0}", "\u{FFFF}", "99999999999999999999999", "ts", "bt", "n", "v", "#", "i", "u",
        "\"ts\":", "\"bn\":\"x:\"", "\"t\":-1e400", "device=", "1.7976931348623157e309",
    ].map { Array($0.utf8) }

    func mutate(_ input: [UInt8], _ random: inout Random) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + random.below(4)) {
            switch random.below(7) {
            case 0 where !bytes.isEmpty: // flip a byte
                bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
            case 1: // insert a random byte
                bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: random.below(bytes.count + 1))
            case 2 where !bytes.isEmpty: // truncate
                bytes.removeLast(random.below(bytes.count))
            case 3 where !bytes.isEmpty: // delete a run
                let at = random.below(bytes.count)
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(8)))
            case 4: // insert a meaningful fragment
                let fragment = PayloadFuzzTests.fragments[random.below(PayloadFuzzTests.fragments.count)]
                bytes.insert(contentsOf: fragment, at: random.below(bytes.count + 1))
            case 5 where !bytes.isEmpty: // duplicate a slice
                let a = random.below(bytes.count), b = min(bytes.count, a + random.below(32))
                bytes.insert(contentsOf: bytes[a..<b], at: random.below(bytes.count + 1))
            default: // swap two bytes
                if bytes.count > 1 { bytes.swapAt(random.below(bytes.count), random.below(bytes.count)) }
            }
        }
        return bytes
    }

    static let decoders: [(PayloadFormat, any PayloadDecoder)] = [
        (.json, JSONPayloadDecoder()), (.json, JSONPayloadDecoder(tsUnit: .nanoseconds)), (.json, JSONPayloadDecoder(tsUnit: .seconds)),
        (.senml, SenMLPayloadDecoder()),
        (.line, LinePayloadDecoder()), (.line, LinePayloadDecoder(precision: .seconds)),
    ]

    func check(_ decoder: any PayloadDecoder, _ payload: [UInt8], device: String?) -> Int {
        let context = PayloadContext(topic: "t", device: device, receivedAt: 1_732_540_999_000)
        let out = decoder.decode(payload, context: context)
        // Into a buffer that holds another payload's readings (as the edge decodes a
        // hand-over): the same readings after those, nothing when the payload fails whole.
        let earlier = [Reading(device: "x", metric: "y", ts: 1_000_000_000_000, value: 1)]
        var buffer = earlier
        let report = decoder.decode(payload, context: context, appendingTo: &buffer)
        #expect(buffer == earlier + out.readings)
        #expect(report.problems == out.problems && report.stamped == out.stamped.map { $0 + 1 })
        for reading in out.readings {
            #expect(reading.problem == nil, "invalid reading \(reading) from \(String(decoding: payload, as: UTF8.self).debugDescription)")
        }
        for problem in out.problems {
            #expect(!problem.reason.isEmpty)
        }
        #expect(out.stampedWithReceiveTime <= out.readings.count)
        return out.readings.count
    }

    @Test(arguments: 0..<decoders.count)
    func mutatedAndRandomPayloads(decoderIndex: Int) {
        let (format, decoder) = PayloadFuzzTests.decoders[decoderIndex]
        var random = Random(state: 42 &+ UInt64(decoderIndex))
        let seeds = (PayloadFuzzTests.seeds[format] ?? []).map { Array($0.utf8) }
        var decodedSome = 0
        for round in 0..<3_000 {
            let payload: [UInt8]
            switch round % 4 {
            case 0: // pure noise
                payload = (0..<random.below(200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1: // noise over the format's own alphabet
                payload = (0..<random.below(200)).flatMap { _ in PayloadFuzzTests.fragments[random.below(PayloadFuzzTests.fragments.count)] }
            default: // a valid payload, mutated
                payload = mutate(seeds[random.below(seeds.count)], &random)
            }
            decodedSome += check(decoder, payload, device: round % 3 == 0 ? nil : "d1")
        }
        // The mutations leave many payloads partly intact: the decoders must still read those.
        #expect(decodedSome > 50, "only \(decodedSome) readings decoded")
    }

    @Test(arguments: 0..<decoders.count)
    func hostileShapes(decoderIndex: Int) {
        let decoder = PayloadFuzzTests.decoders[decoderIndex].1
        let shapes: [[UInt8]] = [
            Array(repeating: UInt8(ascii: "["), count: 1_000_000),
            Array(repeating: UInt8(ascii: "{"), count: 100_000),
            Array((String(repeating: #"{"a":"#, count: 50_000)).utf8),
            Array(repeating: UInt8(ascii: "\\"), count: 10_000),
            Array(repeating: UInt8(ascii: "\n"), count: 100_000),
            Array(("m " + String(repeating: "a=1,", count: 10_000) + "b=2").utf8),
            Array(("[" + String(repeating: #"{"n":"x","v":1},"#, count: 10_000) + #"{"n":"x","v":1}]"#).utf8),
            Array(repeating: 0xFF, count: 1_000),
            [],
        ]
        for shape in shapes {
            _ = check(decoder, shape, device: "d1")
        }
    }
}
