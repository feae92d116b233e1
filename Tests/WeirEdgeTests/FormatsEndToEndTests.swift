import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirTestSupport
import WeirWire

/// SenML and line-protocol devices as a user runs them: `mosquitto_pub` publishes to a
/// real mosquitto, a real weir-edge decodes and filters, a real weir-cloud holds the
/// windows. Serialized with the other end-to-end suites' habits (timing needs the machine).
@Suite("payload formats end to end", .serialized)
struct FormatsEndToEndTests {
    /// The edge config: one subscription per format, with and without a `{device}` level,
    /// and a range filter whose outliers must become dead letters.
    func writeConfig(_ h: EdgeHarness) throws {
        try h.writeConfig(subscriptions: """
            - topic: senml/{device}
              format: senml
            - topic: senml-packs
              format: senml
            - topic: line/{device}
              format: line
              precision: ms
            - topic: line-tagged
              format: line
              precision: ns
            """, extra: """
            filters:
              - match: "*/*temp"
                range:
                  min: -50
                  max: 150
            """)
    }

    /// `ts` (epoch ms) as SenML seconds with three decimals.
    func seconds(_ ts: Int64) -> String {
        let ms = String(ts % 1000)
        return "\(ts / 1000).\(String(repeating: "0", count: 3 - ms.count))\(ms)"
    }

    @Test("SenML and line-protocol publishers reach the cloud's windows; bad records and outliers become dead letters")
    func senmlAndLineReachTheCloud() async throws {
        try await withEdgeHarness { h in
            try writeConfig(h)
            try await h.startCloud()
            try await h.startEdge()

            let n = 40
            var expected: [String: (count: Int64, sum: Double)] = [:] // "device/metric"
            func expect(_ device: String, _ metric: String, _ value: Double) {
                expected["\(device)/\(metric)", default: (0, 0)].count += 1
                expected["\(device)/\(metric)", default: (0, 0)].sum += value
            }
            var senmlTopic: [String] = [], senmlPacks: [String] = [], lineTopic: [String] = [], lineTagged: [String] = []
            for i in 0..<n {
                let ts = h.baseTs + Int64(i) * 1000
                let temp = 20 + Double(i % 10) / 2
                // Topic device s1; the base name does not name the device here.
                senmlTopic.append(#"[{"bn":"ignored:","bt":\#(seconds(ts)),"n":"temp","u":"Cel","v":\#(temp)},{"n":"hum","t":0.5,"u":"%RH","v":\#(i)}]"#)
                expect("s1", "temp", temp)
                expect("s1", "hum", Double(i))
                // No device level: the base name "s2:" names device s2.
                senmlPacks.append(#"[{"bn":"s2:","bt":\#(seconds(ts)),"n":"temp","v":\#(temp + 1)}]"#)
                expect("s2", "temp", temp + 1)
                // Line protocol, ms precision, topic device l1.
                lineTopic.append("env,site=roof temp=\(temp),hum=\(i)i \(ts)")
                expect("l1", "env.temp", temp)
                expect("l1", "env.hum", Double(i))
                // Line protocol, ns precision, device from the tag.
                lineTagged.append("env,device=l2 temp=\(temp + 2),ok=true \(ts)000000")
                expect("l2", "env.temp", temp + 2)
                expect("l2", "env.ok", 1)
            }
            // Four dead letters: a string value, an outlier, a malformed line, a string field.
            senmlTopic.append(#"[{"bt":\#(seconds(h.baseTs)),"n":"label","vs":"Machine Room"}]"#)
            senmlPacks.append(#"[{"bn":"s2:","bt":\#(seconds(h.baseTs + 500)),"n":"temp","v":999}]"#)
            lineTopic.append("env temp=")
            lineTagged.append(#"env,device=l2 label="x" \#(h.baseTs)000000"#)

            try await h.broker.publishWithMosquittoPub(topic: "senml/s1", lines: senmlTopic)
            try await h.broker.publishWithMosquittoPub(topic: "senml-packs", lines: senmlPacks)
            try await h.broker.publishWithMosquittoPub(topic: "line/l1", lines: lineTopic)
            try await h.broker.publishWithMosquittoPub(topic: "line-tagged", lines: lineTagged)

            guard let cloud = h.cloud else { Issue.record("no cloud"); return }
            let total = expected.values.reduce(0) { $0 + $1.count }
            func fetch() async throws -> [String: (count: Int64, sum: Double)] {
                var seen: [String: (count: Int64, sum: Double)] = [:]
                for key in expected.keys {
                    let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                    // None yet: the cloud has not seen this device (its readings are still on the way).
                    let windows = try await CloudAPI.windows(of: parts[0], metric: parts[1], size: "60s",
                                                             from: h.baseTs - 3_600_000, to: h.baseTs + 3_600_000, in: cloud)
                    seen[key] = (windows.reduce(0) { $0 + $1.count }, windows.reduce(0) { $0 + $1.sum })
                }
                return seen
            }
            let deadline = ContinuousClock.now + .seconds(30)
            var seen = try await fetch()
            while seen.values.reduce(0, { $0 + $1.count }) < total && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
                seen = try await fetch()
            }
            for (key, want) in expected.sorted(by: { $0.key < $1.key }) {
                #expect(seen[key]?.count == want.count, "\(key): cloud counts \(seen[key]?.count ?? -1), published \(want.count)\n\(h.logs())")
                #expect(seen[key]?.sum == want.sum, "\(key): cloud sum \(seen[key]?.sum ?? .nan), published \(want.sum)")
            }

            let status = try await h.waitForStatus { $0.chunks == 0 && ($0.counters["dead_letters"] ?? 0) >= 4 }
            #expect(status.counters["dead_letters"] == 4)
            #expect(status.counters["accepted_readings"] == total)
            let listed = try await EdgeProcess.runCommand(["dead-letters", "--config", h.configPath, "--limit", "10"], in: h.dir.path)
            #expect(listed.stdout.contains("string value ('vs') is not numeric"))
            #expect(listed.stdout.contains("line 1: field 'label' is a string, not a number"))
            #expect(listed.stdout.contains("is above the maximum 150.0"))
        }
    }
}
