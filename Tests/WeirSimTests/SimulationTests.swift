import Foundation
import Testing
import WeirCore
@testable import WeirSim
import WeirSupport

/// The deterministic device model: same seed, same messages; every valid reading carried
/// exactly as the payload says; flakiness where the knobs put it, and nowhere else.
@Suite struct SimulationTests {
    static func flaky(seed: UInt64 = 7, devices: Int = 20, duration: Duration = .seconds(30)) -> SimulationOptions {
        var o = SimulationOptions(devices: devices, rate: 2, duration: duration, metrics: ["temp", "hum", "energy", "door"], seed: seed)
        o.duplicates = 0.05
        o.reorder = 0.1
        o.offline = 0.01
        o.offlineLength = .seconds(2)...(.seconds(5))
        o.skew = 0.3
        o.malformed = 0.03
        return o
    }

    @Test func sameSeedGivesTheSameMessagesByteForByte() throws {
        var a = try Simulation(options: Self.flaky())
        var b = try Simulation(options: Self.flaky())
        let ma = a.allMessages()
        let mb = b.allMessages()
        #expect(ma.count == mb.count)
        #expect(ma == mb)
        #expect(a.tally == b.tally)
    }

    @Test func anotherSeedGivesOtherValues() throws {
        var a = try Simulation(options: Self.flaky(seed: 1))
        var b = try Simulation(options: Self.flaky(seed: 2))
        let ra = Set(a.allMessages().flatMap(\.readings))
        let rb = Set(b.allMessages().flatMap(\.readings))
        #expect(ra != rb)
    }

    @Test func flakyKnobsDoNotChangeTheReadings() throws {
        // Duplicates, reordering, offline episodes and garbage change what is sent and when,
        // never which readings exist (skew changes timestamps, so it stays off here).
        var calm = Self.flaky()
        calm.duplicates = 0; calm.reorder = 0; calm.offline = 0; calm.malformed = 0; calm.skew = 0
        var wild = calm
        wild.duplicates = 0.2; wild.reorder = 0.3; wild.offline = 0.02; wild.malformed = 0.1
        var a = try Simulation(options: calm)
        var b = try Simulation(options: wild)
        let ra = Set(a.allMessages().flatMap(\.readings))
        let rb = Set(b.allMessages().flatMap(\.readings))
        #expect(ra == rb)
        #expect(ra.count == 20 * 60 * 4)
    }

    @Test func everyReadingIsSentOnceAsNewAndTheTallyAddsUp() throws {
        var simulation = try Simulation(options: Self.flaky())
        let messages = simulation.allMessages()
        let tally = simulation.tally
        var firstSends: [ReadingIdentity: Double] = [:]
        var duplicateReadings = 0
        var malformed = 0
        for message in messages {
            switch message.kind {
            case .readings:
                for r in message.readings {
                    #expect(firstSends.updateValue(r.value, forKey: r.identity) == nil, "sent as new twice: \(r)")
                }
            case .duplicate:
                duplicateReadings += message.readings.count
                for r in message.readings { #expect(firstSends[r.identity] == r.value, "a duplicate must repeat a reading already sent, same value") }
            case .malformed:
                malformed += 1
                #expect(message.readings.isEmpty)
            }
        }
        #expect(firstSends.count == 20 * 60 * 4)
        #expect(tally.readings == firstSends.count)
        #expect(tally.messages == messages.count)
        #expect(tally.duplicateReadings == duplicateReadings)
        #expect(tally.malformedTotal == malformed)
        #expect(tally.duplicateMessages > 0)
        #expect(tally.reorderedMessages > 0)
        #expect(tally.offlineEpisodes > 0)
        #expect(malformed > 0)
    }

    @Test func payloadsSayExactlyWhatTheReadingsSay() throws {
        var simulation = try Simulation(options: Self.flaky())
        for message in simulation.allMessages() {
            guard case .readings = message.kind else { continue }
            let json = try JSONDecoder().decode(JSONValue.self, from: Data(message.payload))
            var decoded: [Reading] = []
            let device = message.topic.split(separator: "/")[1]
            for object in json.objects {
                guard case .number(let ts)? = object["ts"] else { Issue.record("no ts"); continue }
                for metric in ["temp", "hum", "energy", "door"] {
                    let value: Double
                    switch object[metric] {
                    case .number(let n)?: value = n
                    case .bool(let b)?: value = b ? 1 : 0
                    default: Issue.record("\(metric) missing"); continue
                    }
                    decoded.append(Reading(device: String(device), metric: metric, ts: Int64(ts), value: value))
                }
            }
            #expect(Set(decoded) == Set(message.readings))
            #expect(decoded.count == message.readings.count)
        }
    }

    @Test func valuesAreRealisticAndAtSensorResolution() throws {
        var simulation = try Simulation(options: SimulationOptions(devices: 5, rate: 1, duration: .seconds(600),
                                                                     metrics: ["temp", "hum", "energy", "door", "battery", "co2"]))
        let readings = simulation.allMessages().flatMap(\.readings)
        let byMetric = Dictionary(grouping: readings, by: \.metric)
        for r in byMetric["temp"]! { #expect((-10...45).contains(r.value)); #expect((r.value * 10).rounded() / 10 == r.value) }
        for r in byMetric["hum"]! { #expect((0...100).contains(r.value)); #expect((r.value * 2).rounded() / 2 == r.value) }
        for r in byMetric["door"]! { #expect(r.value == 0 || r.value == 1) }
        for r in byMetric["co2"]! { #expect((380...5000).contains(r.value)); #expect(r.value.rounded() == r.value) }
        // The energy counter never goes down, per device.
        for (_, series) in Dictionary(grouping: byMetric["energy"]!, by: \.device) {
            let values = series.sorted { $0.ts < $1.ts }.map(\.value)
            #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
            #expect(values.last! > values.first!)
        }
        // A random walk moves, but not by much from one second to the next.
        for (_, series) in Dictionary(grouping: byMetric["temp"]!, by: \.device) {
            let values = series.sorted { $0.ts < $1.ts }.map(\.value)
            #expect(Set(values).count > 3)
            #expect(zip(values, values.dropFirst()).allSatisfy { abs($0 - $1) < 1.0 })
        }
    }

    @Test func timestampsIncreasePerDeviceAndSkewStaysInsideTheEdgeLimits() throws {
        var options = Self.flaky()
        options.skew = 1
        let start = options.start
        var simulation = try Simulation(options: options)
        let readings = simulation.allMessages().filter { $0.kind == .readings }.flatMap(\.readings).filter { $0.metric == "temp" }
        for (_, series) in Dictionary(grouping: readings, by: \.device) {
            let ts = series.map(\.ts).sorted()
            #expect(Set(ts).count == ts.count)
            let offset = ts[0] - start
            // Skew within −4 min … +2 min (+ the device's phase and jitter).
            #expect(offset >= -240_000 && offset <= 121_000)
        }
        #expect(simulation.tally.skewedDevices == options.devices)
    }

    @Test func offlineDevicesSendTheNewestFirstThenTheirBacklog() throws {
        var options = SimulationOptions(devices: 1, rate: 1, duration: .seconds(120), metrics: ["temp"], seed: 3)
        options.offline = 0.05
        options.offlineLength = .seconds(5)...(.seconds(10))
        var simulation = try Simulation(options: options)
        let readings = simulation.allMessages().flatMap(\.readings)
        #expect(simulation.tally.offlineEpisodes > 0)
        // Out of order: some reading is sent after a newer one.
        let ts = readings.map(\.ts)
        let inversions = zip(ts, ts.dropFirst()).filter { $0 > $1 }.count
        #expect(inversions > 0)
        #expect(Set(ts).count == 120)
    }

    @Test(arguments: MalformedKind.allCases)
    func malformedPayloadsAreNeverValidReadings(kind: MalformedKind) throws {
        var options = SimulationOptions(devices: 3, rate: 5, duration: .seconds(20), metrics: ["temp"], seed: 9)
        options.malformed = 0.5
        options.malformedKinds = [kind]
        var simulation = try Simulation(options: options)
        let bad = simulation.allMessages().filter { if case .malformed = $0.kind { return true } else { return false } }
        #expect(bad.count > 10)
        for message in bad {
            #expect(message.readings.isEmpty)
            #expect(!Self.couldBeAValidReading(message), "\(kind): \(String(decoding: message.payload, as: UTF8.self).prefix(80))")
        }
    }

    /// A strict reading of DESIGN.md's JSON format: does this payload hold at least one
    /// valid reading with a valid timestamp?
    static func couldBeAValidReading(_ message: SimulatedMessage) -> Bool {
        let device = message.topic.split(separator: "/").dropFirst().first.map(String.init) ?? ""
        guard (try? Reading.validateName(device, field: "device")) != nil else { return false }
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(message.payload)) else { return false }
        for object in json.objects {
            guard case .number(let t)? = object["ts"] else { continue }
            guard t.isFinite, t >= Double(SimulationOptions.earliestValidTimestamp), t <= Double(WallClock.nowMs() + 300_000) else { continue }
            for (key, value) in object where key != "ts" {
                guard (try? Reading.validateName(key, field: "metric")) != nil else { continue }
                switch value {
                case .number(let n) where n.isFinite: return true
                case .bool: return true
                default: continue
                }
            }
        }
        return false
    }

    @Test func badOptionsAreRefusedWithTheirName() {
        func message(_ change: (inout SimulationOptions) -> Void) -> String {
            var o = SimulationOptions()
            change(&o)
            do { try o.validate(); return "" } catch { return error.message }
        }
        #expect(message { $0.devices = 0 }.contains("--devices"))
        #expect(message { $0.rate = 1000 }.contains("--rate"))
        #expect(message { $0.metrics = ["temp", "te mp"] }.contains("--metrics"))
        #expect(message { $0.metrics = ["ts"] }.contains("timestamp"))
        #expect(message { $0.duplicates = 1.5 }.contains("--dup"))
        #expect(message { $0.skewRange = 0...400_000 }.contains("max_clock_skew"))
        #expect(message { $0.start = 946_684_800_000 }.contains("2000-01-01"))
        #expect(message { _ in }.isEmpty)
    }
}

/// Strict JSON: numbers, booleans, strings, null, arrays and objects kept apart.
enum JSONValue: Decodable {
    case number(Double), bool(Bool), string(String), null, array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    /// The objects of a payload: itself, or the objects of an array.
    var objects: [[String: JSONValue]] {
        switch self {
        case .object(let o): return [o]
        case .array(let a): return a.compactMap { if case .object(let o) = $0 { return o } else { return nil } }
        default: return []
        }
    }
}
