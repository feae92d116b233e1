import Foundation
import Synchronization
import Testing
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport
import WeirSupport
import WeirWire

/// `uplink.replay` as a user sees it: a backlog built while the cloud is down, the cloud
/// back while devices keep publishing live readings. What shows the order is the cloud's
/// own record: a backlog reading applied after a newer live reading of its device is
/// *late* (its window closed under the device's watermark), one applied before is not.
/// That is exact, whatever the machine's speed: no timing is asserted.
@Suite("weir-edge replay order end to end", .serialized)
struct EdgeReplayOrderEndToEndTests {
    static let devices = 4
    /// Live readings' values start here (backlog values are their index, 0..<backlog).
    static let liveValueBase = 1_000_000

    /// The 1 s windows of `temp` for device `d<device>` with start in `[from, to)`.
    func windows(_ h: EdgeHarness, device: Int, from: Int64, to: Int64) async throws -> [WindowsAnswer.Window] {
        guard let cloud = h.cloud else { return [] }
        return try await CloudAPI.windows(of: "d\(device)", metric: "temp", size: "1s", from: from, to: to, in: cloud)
    }

    /// All windows of the range, over all devices, keyed by device and start.
    func allWindows(_ h: EdgeHarness, from: Int64, to: Int64) async throws -> [String: [Int64: WindowsAnswer.Window]] {
        var out: [String: [Int64: WindowsAnswer.Window]] = [:]
        for d in 0..<Self.devices {
            for w in try await windows(h, device: d, from: from, to: to) { out["d\(d)", default: [:]][w.start] = w }
        }
        return out
    }

    /// Publishes live readings (device d<k % 4>, ts liveBase + k, value liveValueBase + k),
    /// 8 every 20 ms, until `stop` is set; returns how many it published.
    final class LivePublisher: Sendable {
        let stopFlag = Atomic<Bool>(false)
        let published = Atomic<Int>(0)
        func stop() { stopFlag.store(true, ordering: .sequentiallyConsistent) }
    }

    struct Outcome {
        var backlog: Int
        var live: Int
        /// Backlog readings the cloud counted late: applied after a newer live reading.
        var backlogLate: Int64
        /// How much of the backlog the cloud held when it first showed a live reading.
        var backlogSeenWhenLiveFirstSeen: Int64?
    }

    /// Backlog while the cloud is down, then the cloud back while live readings flow;
    /// checks that every reading arrives exactly once and returns what the order did.
    func replay(_ order: String) async throws -> Outcome {
        try await withEdgeHarness { h in
            let maxRequest = 50
            try await h.startEdge(environment: ["WEIR_EDGE_UPLINK_REPLAY": order, "WEIR_EDGE_BUFFER_CHUNK_MAX_READINGS": "\(maxRequest)",
                                                "WEIR_EDGE_UPLINK_MAX_REQUEST_READINGS": "\(maxRequest)"])
            let pub = try await h.publisher()
            // The backlog: 1000 readings over 4 devices, 10 minutes old.
            let backlog = 1000
            try await h.publish(0..<backlog, devices: Self.devices, with: pub)
            _ = try await h.waitForStatus { $0.readings >= Int64(backlog) && $0.uplinkState == "retrying" }

            // Live readings from now on, while the cloud is still down and after it is back.
            let liveBase = WallClock.nowMs()
            let live = LivePublisher()
            let publishing = Task {
                var k = 0
                while !live.stopFlag.load(ordering: .sequentiallyConsistent) {
                    let tick = k..<(k + 8)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for i in tick {
                            let payload = Array("{\"ts\": \(liveBase + Int64(i)), \"temp\": \(Self.liveValueBase + i)}".utf8)
                            group.addTask { try await pub.publish(topic: "devices/d\(i % Self.devices)/telemetry", payload: payload, qos: 1) }
                        }
                        try await group.waitForAll()
                    }
                    k = tick.upperBound
                    live.published.store(k, ordering: .sequentiallyConsistent)
                    try await Task.sleep(for: .milliseconds(20))
                }
                return k
            }
            do {
                // Some live readings are sealed in the buffer before the cloud comes back:
                // the newest chunks are live ones.
                let before = try await h.waitForStatus { $0.readings >= Int64(backlog + 4 * 8) }
                #expect(before.readings >= Int64(backlog + 4 * 8), "no live chunk sealed: \(before.text)")

                try await h.startCloud()
                // The cloud drains the backlog while live readings keep coming.
                let deadline = ContinuousClock.now + .seconds(40)
                var backlogSeen: Int64 = 0
                var backlogSeenWhenLiveFirstSeen: Int64?
                while ContinuousClock.now < deadline {
                    // Live first, then the backlog: a backlog count read after live readings
                    // were seen cannot be older than that sight.
                    let new = try await allWindows(h, from: liveBase - 1000, to: liveBase + 3_600_000)
                    let old = try await allWindows(h, from: h.baseTs - 60_000, to: h.baseTs + 60_000)
                    backlogSeen = old.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
                    let liveSeen = new.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
                    if liveSeen > 0 && backlogSeenWhenLiveFirstSeen == nil { backlogSeenWhenLiveFirstSeen = backlogSeen }
                    if backlogSeen >= Int64(backlog) { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(backlogSeen == Int64(backlog), "the cloud holds \(backlogSeen) of the \(backlog) backlog readings\n\(h.logs())")
                live.stop()
                let liveCount = try await publishing.value
                await pub.disconnect()
                try await h.waitForDrain()

                // Every reading exactly once: the backlog's and the live readings' windows.
                let old = try await allWindows(h, from: h.baseTs - 60_000, to: h.baseTs + 60_000)
                let expectedOld = h.expectedWindows(0..<backlog, devices: Self.devices)
                var expectedNew: [String: [Int64: (count: Int64, sum: Double)]] = [:]
                for k in 0..<liveCount {
                    let start = WindowMath.start(of: liveBase + Int64(k), size: 1000)
                    expectedNew["d\(k % Self.devices)", default: [:]][start, default: (0, 0)].count += 1
                    expectedNew["d\(k % Self.devices)", default: [:]][start, default: (0, 0)].sum += Double(Self.liveValueBase + k)
                }
                let new = try await allWindows(h, from: liveBase - 1000, to: liveBase + 3_600_000)
                for (expected, actual, what) in [(expectedOld, old, "backlog"), (expectedNew, new, "live")] {
                    for d in 0..<Self.devices {
                        let device = "d\(d)"
                        #expect(Set((actual[device] ?? [:]).keys) == Set((expected[device] ?? [:]).keys), "\(what) windows of \(device)")
                        for (start, e) in expected[device] ?? [:] {
                            #expect(actual[device]?[start]?.count == e.count, "\(what) \(device) \(start): lost or double-counted")
                            #expect(actual[device]?[start]?.sum == e.sum, "\(what) \(device) \(start)")
                        }
                    }
                }
                let status = try h.status()
                #expect(status.chunks == 0)
                #expect(status.counters["accepted_readings"] == Int64(backlog + liveCount))
                #expect(status.counters["forwarded_readings"] == Int64(backlog + liveCount))
                let backlogLate = old.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.late } }
                let outcome = Outcome(backlog: backlog, live: liveCount, backlogLate: backlogLate,
                                      backlogSeenWhenLiveFirstSeen: backlogSeenWhenLiveFirstSeen)
                print("replay \(order): backlog \(backlog), live \(liveCount); backlog readings counted late \(backlogLate); "
                      + "backlog in the cloud when live first seen: \(backlogSeenWhenLiveFirstSeen.map(String.init) ?? "-")")
                return outcome
            } catch {
                live.stop()
                _ = try? await publishing.value
                throw error
            }
        }
    }

    @Test("live-first: live readings reach the cloud before the backlog has drained (the backlog counts as late), every reading once")
    func liveFirst() async throws {
        let outcome = try await replay("live-first")
        // The batch the uplink was already retrying when the outage began (one request of
        // at most 50 backlog readings) goes first; everything else of the backlog arrives
        // after live readings of the same devices, so the cloud counts it late.
        #expect(outcome.backlogLate >= Int64(outcome.backlog - 50), "only \(outcome.backlogLate) of \(outcome.backlog) backlog readings came after live ones")
        #expect(outcome.backlogLate < Int64(outcome.backlog) + 1)
    }

    @Test("oldest-first: the backlog arrives in event order before the live readings, nothing late, every reading once")
    func oldestFirst() async throws {
        let outcome = try await replay("oldest-first")
        #expect(outcome.backlogLate == 0, "\(outcome.backlogLate) backlog readings came after newer ones")
        // Live readings wait for the backlog: the cloud showed none before it held it all.
        #expect(outcome.backlogSeenWhenLiveFirstSeen.map { $0 == Int64(outcome.backlog) } ?? true)
    }
}
