import Foundation
import Synchronization
import Testing
import WeirCore
import WeirEdge
import WeirMQTT
import WeirTestSupport

/// A gateway restarted while its devices keep publishing: the broker queues for the
/// edge's persistent session, and on connect delivers that backlog before anything else.
/// With more queued than the inbound queue holds, an edge that waited for its SUBACK
/// before reading deadlocked (issue 12). Real mosquitto, weir-edge and weir-cloud.
@Suite("weir-edge restarts with a backlog queued at the broker", .serialized)
struct RestartBacklogEndToEndTests {
    /// Backlog per round: at least 20× the inbound queue, and never a trivial one.
    static func backlog(capacity: Int) -> Int { max(20 * capacity, 1_000) }

    @Test("an edge restarted with ≥ 20× inbound_capacity queued for its session reads it all, three rounds in a row",
          arguments: [1, 16, 256])
    func restartWithQueuedBacklog(capacity: Int) async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            let env = ["WEIR_EDGE_MQTT_INBOUND_CAPACITY": "\(capacity)"]
            try await h.startEdge(environment: env)   // the broker now keeps the session
            let pub = try await h.publisher()
            var published = 0
            for round in 1...3 {
                await h.edge?.stop()
                let n = Self.backlog(capacity: capacity)
                try await h.publish(published..<(published + n), devices: 8, with: pub)
                published += n
                // Ready means subscribed: the old edge never got here, it waited for a
                // SUBACK behind a full queue.
                try await h.startEdge(environment: env)
                let seen = try await h.waitForCloudCount(Int64(published), devices: 8, timeout: .seconds(60))
                #expect(seen == Int64(published), "round \(round): cloud holds \(seen) of \(published)\n\(h.logs())")
            }
            let problems = try await h.windowMismatches(0..<published, devices: 8)
            #expect(problems.isEmpty, "\(problems.prefix(10))")
            let status = try await h.waitForStatus { $0.chunks == 0 }
            #expect(status.counters["accepted_readings"] == Int64(published))
            #expect(status.counters["messages"] == Int64(published))
            await pub.disconnect()
        }
    }

    @Test("the broker restarts while the edge is down with a backlog queued: the persisted backlog is read, exactly")
    func brokerRestartInBetween() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            let env = ["WEIR_EDGE_MQTT_INBOUND_CAPACITY": "16"]
            try await h.startEdge(environment: env)
            var published = 0
            for round in 1...3 {
                await h.edge?.stop()
                let pub = try await h.publisher()
                let n = Self.backlog(capacity: 16) * 2
                try await h.publish(published..<(published + n), devices: 8, with: pub)
                await pub.disconnect()
                published += n
                // mosquitto writes its persistence file on a clean stop and reads it back.
                try await h.restartBroker()
                try await h.startEdge(environment: env)
                let seen = try await h.waitForCloudCount(Int64(published), devices: 8, timeout: .seconds(60))
                #expect(seen == Int64(published), "round \(round): cloud holds \(seen) of \(published)\n\(h.logs())")
            }
            let problems = try await h.windowMismatches(0..<published, devices: 8)
            #expect(problems.isEmpty, "\(problems.prefix(10))")
        }
    }

    @Test("soak: 20 restarts while a publisher runs the whole time — 0 stalls, 0 lost, 0 double-counted")
    func soakRestartsUnderLoad() async throws {
        try await withEdgeHarness { h in
            try await h.startCloud()
            let env = ["WEIR_EDGE_MQTT_INBOUND_CAPACITY": "16"]
            try await h.startEdge(environment: env)
            let pub = try await h.publisher()
            let stop = StopFlag()
            // Publishes slices of 250 readings until told to stop; returns how many.
            let publisher = Task {
                var next = 0
                while !stop.isSet {
                    try await h.publish(next..<(next + 250), devices: 8, with: pub)
                    next += 250
                    try await Task.sleep(for: .milliseconds(20))
                }
                return next
            }
            var rounds = 0
            do {
                for _ in 1...20 {
                    try await Task.sleep(for: .milliseconds(Int.random(in: 200...700)))
                    await h.edge?.stop()
                    try await Task.sleep(for: .milliseconds(Int.random(in: 50...400)))
                    // Throws (a stall) when the edge is not subscribed within 30 s.
                    try await h.startEdge(environment: env)
                    rounds += 1
                }
            } catch {
                stop.set()
                _ = try? await publisher.value
                throw error
            }
            stop.set()
            let published = try await publisher.value
            #expect(rounds == 20)
            #expect(published >= 5_000, "the publisher ran through the restarts")
            let seen = try await h.waitForCloudCount(Int64(published), devices: 8, timeout: .seconds(90))
            #expect(seen == Int64(published), "cloud holds \(seen) of \(published)\n\(h.logs())")
            let problems = try await h.windowMismatches(0..<published, devices: 8)
            #expect(problems.isEmpty, "\(problems.prefix(10))")
            let devices = try await h.cloudDevices()
            #expect(devices.reduce(0) { $0 + $1.readings } == Int64(published), "distinct readings stored")
            await pub.disconnect()
        }
    }
}

/// A flag one task sets and another polls.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}
