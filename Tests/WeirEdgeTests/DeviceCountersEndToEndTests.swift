import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirTestSupport

/// Issue 6: every reading a filter removes is counted per reason *per device*, and bad
/// timestamps per device, in `weir-edge status` (text and `--json`) and in `/metrics`.
@Suite("per-device filter and clock counters end to end", .serialized)
struct DeviceCountersEndToEndTests {
    @Test("filter drops by reason and bad timestamps are counted per device in status and metrics, and survive a restart")
    func perDeviceCounters() async throws {
        try await withEdgeHarness { h in
            let metricsPort = try FreePort.allocate()
            try """
            gateway: gw-1
            mqtt:
              url: \(h.broker.url)
              client_id: edge-counters-\(h.broker.port)
              subscriptions:
                - topic: devices/{device}/telemetry
                  format: json
            buffer:
              path: \(h.bufferPath)
              flush_interval: 100ms
            uplink:
              url: http://127.0.0.1:\(h.cloudPort)
              backoff_base: 50ms
              backoff_cap: 500ms
            metrics:
              listen: 127.0.0.1:\(metricsPort)
            max_clock_skew: 5m
            on_bad_timestamp: reject
            filters:
              - match: "*/temp"
                range:
                  min: -50
                  max: 150
              - match: "*/*"
                dedup: 60s
            """.write(toFile: h.configPath, atomically: true, encoding: .utf8)
            try await h.startEdge() // the cloud stays down: everything stays in the buffer

            let t = h.baseTs
            var d1: [String] = (0..<10).map { #"{"ts": \#(t + Int64($0) * 1000), "temp": \#(20 + $0)}"# }
            d1 += (0..<3).map { #"{"ts": \#(t + Int64($0) * 1000), "temp": 99}"# }          // 3 repeats: dedup
            d1 += [#"{"ts": \#(t + 50_000), "temp": 400}"#, #"{"ts": \#(t + 51_000), "temp": -90}"#] // 2 out of range
            var d2: [String] = (0..<5).map { #"{"ts": \#(t + Int64($0) * 1000), "hum": \#(40 + $0)}"# }
            d2 += (0..<4).map { #"{"ts": \#(631_152_000_000 + Int64($0)), "hum": 1}"# }      // 1990: bad timestamps
            d2 += [#"{"ts": \#(t + 4000), "hum": 44}"#]                                        // 1 repeat: dedup
            try await h.broker.publishWithMosquittoPub(topic: "devices/d1/telemetry", lines: d1)
            try await h.broker.publishWithMosquittoPub(topic: "devices/d2/telemetry", lines: d2)

            let expected: [String: [String: Int64]] = [
                "d1": ["dedup": 3, "range": 2],
                "d2": ["bad_timestamp": 4, "dedup": 1],
            ]
            let status = try await h.waitForStatus { $0.deviceCounters == expected && $0.readings == 15 }
            #expect(status.deviceCounters == expected, "\(h.logs())")
            #expect(status.readings == 15)
            #expect(status.counters["filtered_dedup"] == 4)
            #expect(status.counters["bad_timestamp"] == 4)

            // The text names each device's counts; --json carries them all.
            let text = try await EdgeProcess.runCommand(["status", "--config", h.configPath], in: h.dir.path)
            #expect(text.status == 0)
            #expect(text.stdout.contains("d1: dedup 3, range 2"), "\(text.stdout)")
            #expect(text.stdout.contains("d2: bad_timestamp 4, dedup 1"), "\(text.stdout)")
            let json = try await EdgeProcess.runCommand(["status", "--config", h.configPath, "--json"], in: h.dir.path)
            #expect(try JSONDecoder().decode(EdgeStatus.self, from: Data(json.stdout.utf8)).deviceCounters == expected)

            // Prometheus: one series per device and reason.
            let (code, body) = try await HTTPGet.fetch("http://127.0.0.1:\(metricsPort)/metrics")
            #expect(code == 200)
            let lines = String(decoding: body, as: UTF8.self).split(separator: "\n").map(String.init)
            func value(_ name: String, _ labels: [String]) -> Double? {
                lines.first { $0.hasPrefix(name + "{") && labels.allSatisfy($0.contains) }
                    .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
            }
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d1""#, #"reason="dedup""#]) == 3)
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d1""#, #"reason="range""#]) == 2)
            #expect(value("weir_edge_device_filter_drops_total", [#"device="d2""#, #"reason="dedup""#]) == 1)
            #expect(value("weir_edge_device_bad_timestamps_total", [#"device="d2""#]) == 4)

            // Kept in the buffer file: a restart does not reset them.
            #expect(await h.edge?.stop() == .exited(0))
            let stopped = try h.status()
            #expect(stopped.deviceCounters == expected)
            #expect(stopped.brokerState == "stopped", "status must not claim a stopped edge is connected")
        }
    }
}
