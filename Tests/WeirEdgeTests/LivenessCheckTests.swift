import Foundation
import Testing
import WeirEdge
import WeirMQTT
import WeirSupport
import WeirTestSupport

/// The stall decision, case by case, without a broker; and the sd_notify datagrams.
@Suite("weir-edge liveness check")
struct LivenessCheckTests {
    let check = LivenessCheck(limit: .seconds(10))
    let t0 = ContinuousClock.now

    func inbound(waiting: Int = 0, waitingFor: Duration? = nil, blockedFor: Duration? = nil, now: ContinuousClock.Instant) -> InboundProgress {
        InboundProgress(waiting: waiting, inHand: 0, waitingSince: waitingFor.map { now - $0 }, producerBlockedSince: blockedFor.map { now - $0 })
    }

    @Test("nothing waiting is never a stall, however long it has been quiet")
    func idleIsHealthy() {
        let now = t0 + .seconds(3600)
        let inputs = LivenessCheck.Inputs(now: now, inbound: inbound(now: now))
        #expect(check.evaluate(inputs) == nil)
        #expect(check.sinceProgress(inputs) == .zero)
    }

    @Test("messages waiting untaken: healthy below the limit, stalled at it, since when they began to wait")
    func consumerNotTaking() throws {
        let now = t0 + .seconds(100)
        #expect(check.evaluate(.init(now: now, inbound: inbound(waiting: 5, waitingFor: .seconds(9), now: now))) == nil)
        let stall = try #require(check.evaluate(.init(now: now, inbound: inbound(waiting: 5, waitingFor: .seconds(12), now: now))))
        #expect(stall.since == now - .seconds(12))
        #expect(stall.reason.contains("5 received messages wait"))
        #expect(check.sinceProgress(.init(now: now, inbound: inbound(waiting: 5, waitingFor: .seconds(12), now: now))) == .seconds(12))
    }

    @Test("the network thread blocked on a full queue is a stall that names it")
    func producerBlocked() throws {
        let now = t0 + .seconds(100)
        let stall = try #require(check.evaluate(.init(now: now, inbound: inbound(blockedFor: .seconds(30), now: now))))
        #expect(stall.reason.contains("network thread"))
        #expect(stall.since == now - .seconds(30))
    }

    @Test("an ungranted subscription and an overdue uplink are stalls; the oldest cause is the one reported")
    func grantAndUplink() throws {
        let now = t0 + .seconds(100)
        let grant = try #require(check.evaluate(.init(now: now, inbound: inbound(now: now), pendingGrant: ("devices/+/telemetry", now - .seconds(11)))))
        #expect(grant.reason.contains("devices/+/telemetry"))
        let uplink = try #require(check.evaluate(.init(now: now, inbound: inbound(now: now), uplinkOverdueSince: now - .seconds(10))))
        #expect(uplink.reason.contains("uplink"))
        #expect(check.evaluate(.init(now: now, inbound: inbound(now: now), uplinkOverdueSince: now - .seconds(9))) == nil)
        let both = try #require(check.evaluate(.init(now: now, inbound: inbound(waiting: 3, waitingFor: .seconds(20), now: now),
                                                       uplinkOverdueSince: now - .seconds(40))))
        #expect(both.since == now - .seconds(40))
    }

    @Test("a loop heartbeat is overdue only past its promised deadline")
    func heartbeat() {
        let beat = LoopHeartbeat()
        #expect(beat.overdueSince() == nil, "a loop that never beat is not overdue")
        beat.beat(within: .seconds(5))
        #expect(beat.overdueSince() == nil)
        #expect(beat.overdueSince(now: .now + .seconds(6)) != nil)
        beat.stop()
        #expect(beat.overdueSince(now: .now + .seconds(60)) == nil)
    }

    @Test("health: a stall is reported once when it starts and once when it clears, with its since")
    func healthTransitions() {
        let health = EdgeHealth()
        #expect(health.snapshot.status == .starting)
        health.markSubscribed()
        #expect(health.snapshot.status == .ok && health.snapshot.httpStatus == 200)
        #expect(health.update(stall: (1_000, "stuck"), broker: .connected, inboundWaiting: 16, lastProgressSeconds: 12, nowMs: 13_000) == .stalled)
        #expect(health.update(stall: (1_000, "stuck longer"), broker: .connected, inboundWaiting: 16, lastProgressSeconds: 13, nowMs: 14_000) == .none)
        #expect(health.snapshot.httpStatus == 503)
        #expect(health.snapshot.since == 1_000)
        #expect(health.snapshot.reason == "stuck longer")
        #expect(health.update(stall: nil, broker: .connected, inboundWaiting: 0, lastProgressSeconds: 0, nowMs: 21_000) == .resumed(after: 20_000))
        #expect(health.snapshot.status == .ok && health.snapshot.since == nil)
        #expect(health.update(stall: nil, broker: .connected, inboundWaiting: 0, lastProgressSeconds: 0, nowMs: 22_000) == .none)
    }

    @Test("sd_notify: datagrams reach the socket named by NOTIFY_SOCKET; the watchdog interval comes from WATCHDOG_USEC")
    func notify() async throws {
        try await withTemporaryDirectory { dir in
            let socket = try NotifySocket(in: dir.path)
            let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "3000000"]))
            #expect(notifier.watchdog == .seconds(3))
            #expect(notifier.send("READY=1"))
            #expect(notifier.send("WATCHDOG=1"))
            #expect(socket.receive() == ["READY=1", "WATCHDOG=1"])
            #expect(SystemdNotifier(environment: [:]) == nil)
            #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative"]) == nil)
            let other = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"])
            #expect(other?.watchdog == nil, "the watchdog is meant for another process")
        }
    }
}
