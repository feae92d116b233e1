import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirTestSupport
import WeirSupport

/// Issue 6: every reading a filter removes is counted per reason *per device*, and bad
/// timestamps (clock reset to 1990, or too far in the future) per device, in `weir-edge
/// status` (text and `--json`) and in `/metrics`. Each filter kind gets a crafted sequence
/// whose drops are known: range, dedup, deadband, rate_limit and downsample.
@Suite("per-device filter and clock counters end to end", .serialized)
struct DeviceCountersEndToEndTests {
    @Test("filter drops by reason and bad timestamps are counted per device in status and metrics, and survive a restart")
    func perDeviceCounters() async throws {
        try await withEdgeHarness { h in
            let metricsPort = try FreePort.allocate()
            try h.writeConfig(metricsListen: "127.0.0.1:\(metricsPort)", extra: """
                max_clock_skew: 5m
                on_bad_timestamp: reject
                filters:
                  - match: "*/temp"
                    range:
                      min: -50
                      max: 150
                  - match: "*/*"
                    dedup: 60s
                  - match: "*/level"
                    deadband:
                      abs: 1
                      heartbeat: 1h
                  - match: "*/rpm"
                    rate_limit: 2
                  - match: "*/power"
                    downsample:
                      bucket: 10s
                      aggregate: max
                """)
            try await h.startEdge() // the cloud stays down: everything stays in the buffer

            let t = h.baseTs
            var d1: [String] = (0..<10).map { #"{"ts": \#(t + Int64($0) * 1000), "temp": \#(20 + $0)}"# }
            d1 += (0..<3).map { #"{"ts": \#(t + Int64($0) * 1000), "temp": 99}"# }          // 3 repeats: dedup
            d1 += [#"{"ts": \#(t + 50_000), "temp": 400}"#, #"{"ts": \#(t + 51_000), "temp": -90}"#] // 2 out of range
            var d2: [String] = (0..<5).map { #"{"ts": \#(t + Int64($0) * 1000), "hum": \#(40 + $0)}"# }
            d2 += (0..<4).map { #"{"ts": \#(631_152_000_000 + Int64($0)), "hum": 1}"# }      // 1990: bad timestamps
            d2 += [#"{"ts": \#(t + 4000), "hum": 44}"#]                                        // 1 repeat: dedup
            // Deadband 1 (heartbeat 1 h of event time): 20 passes, 20.5 / 19.2 / 20.9 stay
            // within 1 of it (3 dropped), 25 passes.
            let d3 = zip([20, 20.5, 19.2, 20.9, 25], 0...).map { #"{"ts": \#(t + Int64($1) * 1000), "level": \#($0)}"# }
            // Rate limit 2/s (burst 2) on six readings 1 ms apart: 2 pass, 4 dropped.
            let d4 = (0..<6).map { #"{"ts": \#(t + Int64($0)), "rpm": \#(1000 + $0)}"# }
            // Downsample 10 s, max: bucket [t, t+10s) holds 5, 9, 7; t+10s opens the next
            // bucket (emitting 9 at t); t+3s and t+5s then come too late (2 dropped); the
            // second bucket (3 at t+10s) is emitted when its end has passed.
            let d5 = [(0, 5), (1000, 9), (2000, 7), (10_000, 3), (3000, 100), (5000, 50)]
                .map { #"{"ts": \#(t + Int64($0.0)), "power": \#($0.1)}"# }
            // Two readings from the future (max_clock_skew is 5m): bad timestamps.
            let future = WallClock.nowMs() + 30 * 60_000
            let d6 = (0..<2).map { #"{"ts": \#(future + Int64($0)), "hum": 50}"# }
            for (device, lines) in [("d1", d1), ("d2", d2), ("d3", d3), ("d4", d4), ("d5", d5), ("d6", d6)] {
                try await h.broker.publishWithMosquittoPub(topic: "devices/\(device)/telemetry", lines: lines)
            }

            let expected: [String: [String: Int64]] = [
                "d1": ["dedup": 3, "range": 2],
                "d2": ["bad_timestamp": 4, "dedup": 1],
                "d3": ["deadband": 3],
                "d4": ["rate_limit": 4],
                "d5": ["downsample": 2],
                "d6": ["bad_timestamp": 2],
            ]
            // Kept: d1 10, d2 5, d3 2, d4 2, d5 2 buckets.
            let status = try await h.waitForStatus { $0.deviceCounters == expected && $0.readings == 21 }
            #expect(status.deviceCounters == expected, "\(h.logs())")
            #expect(status.readings == 21)
            #expect(status.counters["filtered_dedup"] == 4)
            #expect(status.counters["filtered_range"] == 2)
            #expect(status.counters["filtered_deadband"] == 3)
            #expect(status.counters["filtered_rate_limit"] == 4)
            #expect(status.counters["filtered_downsample"] == 2)
            #expect(status.counters["bad_timestamp"] == 6)
            #expect(status.counters["downsampled_readings"] == 2)
            // What the filters let through, with the values the sequences predict.
            let kept = Dictionary(grouping: try h.bufferedReadings(), by: \.device)
                .mapValues { $0.sorted { $0.ts < $1.ts }.map { [Double($0.ts - t), $0.value] } }
            #expect(kept["d3"] == [[0, 20], [4000, 25]])
            #expect(kept["d4"] == [[0, 1000], [1, 1001]])
            #expect(kept["d5"] == [[0, 9], [10_000, 3]])
            #expect(kept["d6"] == nil)

            // The text names each device's counts; --json carries them all.
            let text = try await EdgeProcess.runCommand(["status", "--config", h.configPath], in: h.dir.path)
            #expect(text.status == 0)
            #expect(text.stdout.contains("d1: dedup 3, range 2"), "\(text.stdout)")
            #expect(text.stdout.contains("d2: bad_timestamp 4, dedup 1"), "\(text.stdout)")
            for line in ["d3: deadband 3", "d4: rate_limit 4", "d5: downsample 2", "d6: bad_timestamp 2"] {
                #expect(text.stdout.contains("  \(line)\n"), "\(line) missing from\n\(text.stdout)")
            }
            let json = try await EdgeProcess.runCommand(["status", "--config", h.configPath, "--json"], in: h.dir.path)
            #expect(try JSONDecoder().decode(EdgeStatus.self, from: Data(json.stdout.utf8)).deviceCounters == expected)

            // Prometheus: one series per device and reason.
            let (code, body) = try await HTTPGet.fetch("http://127.0.0.1:\(metricsPort)/metrics")
            #expect(code == 200)
            let page = String(decoding: body, as: UTF8.self)
            func value(_ name: String, _ labels: [String]) -> Double? { prometheusValue(page, name, labels) }
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d1""#, #"reason="dedup""#]) == 3)
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d1""#, #"reason="range""#]) == 2)
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d2""#, #"reason="dedup""#]) == 1)
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d3""#, #"reason="deadband""#]) == 3)
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d4""#, #"reason="rate_limit""#]) == 4)
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d5""#, #"reason="downsample""#]) == 2)
            #expect(value("weir_edge_device_bad_timestamps_total", [#"device="d2""#]) == 4)
            #expect(value("weir_edge_device_bad_timestamps_total", [#"device="d6""#]) == 2)
            // The totals by reason, over all devices.
            let totals: [String: Double] = ["range": 2, "dedup": 4, "deadband": 3, "rate_limit": 4, "downsample": 2]
            for (reason, total) in totals {
                #expect(value("weir_edge_filter_drops_total", [#"reason="\#(reason)""#]) == total, "reason \(reason)")
            }
            #expect(prometheusValue(page, "weir_edge_bad_timestamps_total") == 6)

            // Kept in the buffer file: a restart does not reset them.
            #expect(await h.edge?.stop() == .exited(0))
            let stopped = try h.status()
            #expect(stopped.deviceCounters == expected)
            #expect(stopped.brokerState == "stopped", "status must not claim a stopped edge is connected")
        }
    }
}
