import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirTestSupport
import WeirSupport

/// Issue 6's device clocks through a real weir-edge: readings without a time get the
/// receive time (counted in total and per device), and with `on_bad_timestamp:
/// receive-time` a reset or future clock is replaced by the receive time — the reading is
/// kept, counted per device, and a note keeps the original time. Notes are not dead
/// letters: status and `weir-edge dead-letters` count them apart.
@Suite("receive-time stamping and clock replacement end to end", .serialized)
struct ReceiveTimeEndToEndTests {
    @Test("readings without a time and bad timestamps get the receive time; counted per device in status and metrics; notes apart from dead letters")
    func receiveTime() async throws {
        try await withEdgeHarness { h in
            let metricsPort = try FreePort.allocate()
            try h.writeConfig(subscriptions: """
                - topic: devices/{device}/telemetry
                  format: json
                - topic: shared
                  format: json
                """, metricsListen: "127.0.0.1:\(metricsPort)", extra: """
                max_clock_skew: 1m
                on_bad_timestamp: receive-time
                """)
            try await h.startEdge() // the cloud stays down: the readings stay in the buffer

            let t = h.baseTs
            let before = WallClock.nowMs()
            // s1: no time on a topic with a device level.
            try await h.broker.publishWithMosquittoPub(topic: "devices/s1/telemetry", lines: [#"{"temp": 21.5}"#])
            // A topic without a device level: s2's object has no time, s3's has one.
            try await h.broker.publishWithMosquittoPub(topic: "shared", lines: [
                #"[{"device": "s2", "hum": 40}, {"device": "s3", "ts": \#(t), "hum": 41}]"#,
            ])
            // c1: a clock reset to 1990, a clock 10 minutes ahead (max_clock_skew is 1m), a
            // good reading, and a payload that is not JSON (the one real dead letter).
            let ahead = before + 10 * 60_000
            try await h.broker.publishWithMosquittoPub(topic: "devices/c1/telemetry", lines: [
                #"{"ts": 631152000000, "temp": 20}"#,
                #"{"ts": \#(ahead), "temp": 22}"#,
                #"{"ts": \#(t), "temp": 23}"#,
                #"{"temp": "#,
            ])

            let expected: [String: [String: Int64]] = [
                "s1": ["stamped_receive_time": 1],
                "s2": ["stamped_receive_time": 1],
                "c1": ["clock_replaced": 2],
            ]
            let status = try await h.waitForStatus { $0.readings == 6 && $0.deviceCounters == expected && $0.deadLetterRows == 1 }
            let after = WallClock.nowMs()
            #expect(status.deviceCounters == expected, "\(h.logs())")
            #expect(status.readings == 6)
            #expect(status.counters["stamped_receive_time"] == 2)
            #expect(status.counters["clock_replaced"] == 2)
            #expect(status.counters["bad_timestamp"] == nil, "receive-time replaces, it does not reject")
            #expect(status.counters["accepted_readings"] == 6)
            // Notes are not dead letters: the kept rows never exceed the total.
            #expect(status.counters["dead_letters"] == 1)
            #expect(status.deadLetterRows == 1)
            #expect(status.clockNoteRows == 2)

            // The readings without a time, and those with a bad one, carry the receive time.
            let readings = try h.bufferedReadings()
            func times(_ device: String, _ metric: String) -> [Double: Int64] {
                Dictionary(readings.filter { $0.device == device && $0.metric == metric }.map { ($0.value, $0.ts) }) { a, _ in a }
            }
            func isReceiveTime(_ ts: Int64?) -> Bool { ts.map { (before...after).contains($0) } ?? false }
            let s1 = times("s1", "temp"), s2 = times("s2", "hum"), s3 = times("s3", "hum"), c1 = times("c1", "temp")
            #expect(s1.count == 1 && isReceiveTime(s1[21.5]), "s1 at \(s1), received in [\(before), \(after)]")
            #expect(s2.count == 1 && isReceiveTime(s2[40]), "s2 at \(s2), received in [\(before), \(after)]")
            #expect(s3 == [41: t], "a reading with its own time keeps it")
            #expect(c1.count == 3)
            #expect(isReceiveTime(c1[20]), "1990 replaced: \(c1)")
            #expect(isReceiveTime(c1[22]), "10 minutes ahead replaced: \(c1)")
            #expect(c1[23] == t)

            // Status text: the per-device counts and notes apart from dead letters.
            let text = try await EdgeProcess.runCommand(["status", "--config", h.configPath], in: h.dir.path)
            #expect(text.status == 0)
            for line in ["  s1: stamped_receive_time 1\n", "  s2: stamped_receive_time 1\n", "  c1: clock_replaced 2\n",
                         "dead letters:         1 total, 1 kept\n", "clock notes:          2 total, 2 kept"] {
                #expect(text.stdout.contains(line), "'\(line)' missing from\n\(text.stdout)")
            }

            // dead-letters lists the notes, labelled as notes, with the original times.
            let listed = try await EdgeProcess.runCommand(["dead-letters", "--config", h.configPath], in: h.dir.path)
            #expect(listed.status == 0)
            #expect(listed.stdout.hasPrefix("1 dead letters in total, 1 kept; 2 clock notes (readings kept with the receive time) in total, 2 kept; newest 3:"),
                    "\(listed.stdout)")
            #expect(listed.stdout.contains("note:    replaced: c1/temp: timestamp 631152000000 (1990-01-01T00:00:00"), "\(listed.stdout)")
            #expect(listed.stdout.contains("note:    replaced: c1/temp: timestamp \(ahead) ("), "\(listed.stdout)")
            #expect(listed.stdout.contains("is before 2000-01-01"))
            #expect(listed.stdout.contains("ms ahead of the receive time (max_clock_skew 60000 ms); replaced by the receive time"))
            #expect(listed.stdout.contains("reason:  not valid JSON: byte "), "\(listed.stdout)")
            let json = try await EdgeProcess.runCommand(["dead-letters", "--config", h.configPath, "--json"], in: h.dir.path)
            let kinds = try json.stdout.split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }.compactMap { $0?["kind"] as? String }
            #expect(kinds.sorted() == ["clock_note", "clock_note", "dead_letter"])

            // Prometheus: totals and one series per device.
            let (code, body) = try await HTTPGet.fetch("http://127.0.0.1:\(metricsPort)/metrics")
            #expect(code == 200)
            let page = String(decoding: body, as: UTF8.self)
            #expect(prometheusValue(page, "weir_edge_stamped_receive_time_total") == 2, "\(page.prefix(3000))")
            #expect(prometheusValue(page, "weir_edge_device_stamped_receive_time_total", [#"device="s1""#]) == 1)
            #expect(prometheusValue(page, "weir_edge_device_stamped_receive_time_total", [#"device="s2""#]) == 1)
            #expect(prometheusValue(page, "weir_edge_device_stamped_receive_time_total", [#"device="s3""#]) == nil)
            #expect(prometheusValue(page, "weir_edge_clock_replaced_total") == 2)
            #expect(prometheusValue(page, "weir_edge_device_clock_replaced_total", [#"device="c1""#]) == 2)
            #expect(prometheusValue(page, "weir_edge_dead_letters_total") == 1)
        }
    }
}
