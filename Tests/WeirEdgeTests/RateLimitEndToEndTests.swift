import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport

/// A gateway over its `max_readings_per_second`: the cloud answers 429 with
/// `Retry-After`, the edge waits as told and loses nothing; another gateway posting at
/// the same time is never refused and is not held up.
@Suite("per-gateway rate limit end to end", .serialized)
struct RateLimitEndToEndTests {
    static let token = "gw-1-limited"
    static let otherToken = "gw-2-free"

    @Test("gw-1 over its limit is slowed by 429s without losing data; gw-2's batches keep going through")
    func noisyGatewaySlowedOtherNot() async throws {
        try await withEdgeHarness { h in
            let rate = 200
            try await h.startCloud(tokens: ["gw-1": Self.token, "gw-2": Self.otherToken],
                                   gatewayOptions: ["gw-1": ["max_readings_per_second: \(rate)"]])
            let cloud = try #require(h.cloud)
            // Small chunks and requests, so the limit shows as many 429s rather than one large debt.
            try h.writeConfig(uplinkKeys: ["max_request_readings": "100"])
            let small = ["WEIR_EDGE_BUFFER_CHUNK_MAX_READINGS": "50"]
            let n = 1_200
            let pub = try await h.publisher()
            // The backlog is built while the edge is down, then drained against the limit.
            try await h.startEdge(environment: small.merging(["WEIR_EDGE_UPLINK_URL": "http://127.0.0.1:1"]) { $1 })
            try await h.publish(0..<n, with: pub)
            _ = try await h.waitForStatus { $0.readings >= Int64(n) }
            #expect(await h.edge?.stop() == .exited(0))

            let started = ContinuousClock.now
            try await h.startEdge(environment: small.merging(["WEIR_EDGE_UPLINK_TOKEN": Self.token]) { $1 })

            // gw-2 posts small batches meanwhile and times each answer.
            var latencies: [Duration] = []
            var refused: [Int] = []
            var i = 0
            while try await h.cloudCount(devices: 4) < Int64(n) && ContinuousClock.now - started < .seconds(60) {
                let batch = Batch(gateway: "gw-2", id: "gw-2-\(i)",
                                  readings: (0..<10).map { Reading(device: "other", metric: "temp", ts: h.baseTs + Int64(i * 10 + $0), value: 1) })
                let sent = ContinuousClock.now
                let answer = try await CloudAPI.post(batch, to: cloud.url, token: Self.otherToken)
                latencies.append(ContinuousClock.now - sent)
                if answer.status != 200 { refused.append(answer.status) }
                i += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            let drained = ContinuousClock.now - started
            #expect(try await h.cloudCount(devices: 4) == Int64(n), "every reading arrives")
            #expect(try await h.windowMismatches(0..<n, devices: 4) == [])
            // 1 s of burst, then 200/s: the rest cannot have arrived sooner.
            let floor = Duration.seconds(Double(n - rate) / Double(rate))
            #expect(drained >= floor, "drained in \(drained), faster than the limit allows (\(floor))")

            let (_, page) = try await HTTPGet.fetch("\(cloud.url)/metrics")
            let limited = prometheusValue(String(decoding: page, as: UTF8.self), "weir_cloud_rate_limited_total") ?? 0
            #expect(limited >= 1, "the cloud answered 429")
            #expect(refused.isEmpty, "gw-2 was refused: \(refused)")
            #expect(latencies.count >= 5)
            let sorted = latencies.sorted()
            let median = sorted[sorted.count / 2], worst = sorted.last ?? .zero
            print("rate limit: gw-1 drained \(n) readings in \(drained) at \(rate)/s (\(Int(limited)) × 429); gw-2 \(latencies.count) posts, median \(median), max \(worst)")
            // Held up behind gw-1 (a shared limit or lock) would mean waits of a Retry-After (≥ 1 s).
            #expect(worst < .seconds(1), "gw-2's slowest post took \(worst)")
            await pub.disconnect()
        }
    }
}
