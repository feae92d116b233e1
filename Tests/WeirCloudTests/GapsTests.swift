import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore
import WeirWire

/// Cadence, gaps with their causes, completeness: through the query API.
@Suite struct GapsTests {
    @Test func cadenceIsTheMedianIntervalAndNeedsEnoughRegularSamples() {
        func windows(_ times: [Int64]) -> [WindowRecord] {
            var byStart: [Int64: WindowAggregate] = [:]
            for ts in times {
                let start = WindowMath.start(of: ts, size: 60_000)
                if byStart[start] == nil { byStart[start] = WindowAggregate(ts: ts, value: 1) } else { byStart[start]!.add(ts: ts, value: 1) }
            }
            return byStart.sorted { $0.key < $1.key }.map { WindowRecord(sizeMs: 60_000, start: $0.key, aggregate: $0.value) }
        }
        #expect(Cadence.learn(from: windows((0..<100).map { t0 + $0 * 10_000 })) == 10_000)
        // One reading a window: the intervals between windows alone.
        #expect(Cadence.learn(from: windows((0..<40).map { t0 + $0 * 60_000 + 7 })) == 60_000)
        // Too young.
        #expect(Cadence.learn(from: windows((0..<5).map { t0 + $0 * 10_000 })) == nil)
        // Irregular: intervals of 1 s and 50 s alternate.
        var t = t0
        var irregular: [Int64] = []
        for i in 0..<80 { t += i % 2 == 0 ? 1_000 : 50_000; irregular.append(t) }
        #expect(Cadence.learn(from: windows(irregular)) == nil)
    }

    @Test func gapsHaveTheirCauseAndCompletenessFollowsTheCadence() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        // Every 10 s from t0 for 20 min, except: 5 min of silence from +5 min (no data),
        // 2 min from +12 min that the edge reports dropped, and 40 s inside the window at
        // +17 min (a gap inside one window).
        var times: [Int64] = []
        for k in 0..<120 {
            let t = Int64(k) * 10_000
            if t > 300_000 && t < 600_000 { continue }
            if t > 720_000 && t < 840_000 { continue }
            if t > 1_020_000 && t < 1_060_000 { continue }
            times.append(t0 + t)
        }
        let kept = times
        try await harness.withClient { client in
            let batch = Batch(gateway: "gw-1", id: "b1", readings: readings("d1", kept.map { ($0, 20) }),
                              drops: [DropRecord(device: "d1", metric: "temp", from: t0 + 730_000, to: t0 + 830_000, count: 11)])
            #expect(try await client.post(batch).0 == .ok)
            // A second series of the device goes on for another 10 min: temp's silence at
            // its end is still open, not a gap.
            #expect(try await client.post(Batch(gateway: "gw-1", id: "b2", readings: readings("d1", (0..<180).map { (t0 + Int64($0) * 10_000, 1) }, metric: "hum"))).0 == .ok)

            let gaps = try await client.execute(uri: "/v1/devices/d1/gaps?metric=temp", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok)
                return try JSONDecoder().decode(GapsAnswer.self, from: Data(response.body.readableBytesView))
            }
            #expect(gaps.cadenceMs == 10_000)
            #expect(gaps.gaps == [
                .init(from: t0 + 300_000, to: t0 + 600_000, cause: "no_data", dropped: 0),
                .init(from: t0 + 720_000, to: t0 + 840_000, cause: "dropped_at_edge", dropped: 11),
                .init(from: t0 + 1_020_000, to: t0 + 1_060_000, cause: "no_data", dropped: 0),
            ])
            #expect(gaps.drops == [.init(from: t0 + 730_000, to: t0 + 830_000, count: 11)])
            // A range that cuts the first gap still lists it; one before it lists none.
            let cut = try await client.execute(uri: "/v1/devices/d1/gaps?metric=temp&from=\(t0 + 400_000)&to=\(t0 + 700_000)", method: .get, headers: CloudHarness.readerHeaders) { response in
                try JSONDecoder().decode(GapsAnswer.self, from: Data(response.body.readableBytesView))
            }
            #expect(cut.gaps.map(\.from) == [t0 + 300_000])
            let before = try await client.execute(uri: "/v1/devices/d1/gaps?metric=temp&to=\(t0 + 200_000)", method: .get, headers: CloudHarness.readerHeaders) { response in
                try JSONDecoder().decode(GapsAnswer.self, from: Data(response.body.readableBytesView))
            }
            #expect(before.gaps.isEmpty)

            let windows = try await client.windows("d1")
            #expect(windows.first?.expected == 6)
            #expect(windows.first?.completeness == 1)
            let inside = windows.first { $0.start == t0 + 1_020_000 }
            #expect(inside?.count == 3 && inside?.completeness == 0.5)

            let devices = try await client.execute(uri: "/v1/devices", method: .get, headers: CloudHarness.readerHeaders) { response in
                try JSONDecoder().decode([DeviceListEntry].self, from: Data(response.body.readableBytesView))
            }
            // The hour ending at the newest reading (+29:50) covers both series from their
            // start: temp has 120 − 29 − 11 − 3 = 77 of 180 (it stopped at +19:50), hum 180 of 180.
            let completeness = try #require(devices.first?.completeness1h)
            #expect(completeness == 0.714, "completeness_1h \(completeness)")
            #expect(devices.first?.summary.droppedAtEdge == 11)
        }
    }
}
