import Logging
import Metrics
import ServiceLifecycle
import WeirMQTT
import WeirSupport

/// Watches that the edge keeps moving (`LivenessCheck`) once per `interval`: keeps
/// `/healthz`, `/metrics` and `status` current, logs a stall once when it starts and once
/// when it clears, and pets systemd's watchdog only while nothing is stalled — a stalled
/// edge stops petting and systemd restarts it.
struct LivenessMonitor: Service {
    let check: LivenessCheck
    let client: MQTTClient
    let uplink: LoopHeartbeat
    let health: EdgeHealth
    let buffer: EdgeBuffer
    let metrics: EdgeMetrics
    let notifier: SystemdNotifier?
    let logger: Logger

    /// At most a second, and at least twice per watchdog interval.
    var interval: Duration {
        guard let watchdog = notifier?.watchdog else { return .seconds(1) }
        return min(.seconds(1), watchdog / 2)
    }

    func run() async throws {
        var written: IngestState?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            written = tick(written: written)
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { break }
        }
        notifier?.send("STOPPING=1")
        try? buffer.setIngestState(.stopped, sinceMs: nil, reason: nil)
    }

    /// One check; returns what `status` now has on file (the buffer may refuse a write,
    /// for example when the disk is full: it is tried again at the next tick).
    private func tick(written: IngestState?) -> IngestState? {
        let now = ContinuousClock.now
        let nowMs = WallClock.nowMs()
        let inputs = LivenessCheck.Inputs(now: now, inbound: client.inboundProgress,
                                          pendingGrant: client.oldestPendingGrant, uplinkOverdueSince: uplink.overdueSince(now: now))
        let stall = check.evaluate(inputs)
        let progress = check.sinceProgress(inputs)
        let progressSeconds = Double(progress.components.seconds) + Double(progress.components.attoseconds) / 1e18
        let change = health.update(stall: stall.map { (nowMs - Self.ms(now - $0.since), $0.reason) },
                                   broker: client.isConnected ? .connected : .notConnected,
                                   inboundWaiting: inputs.inbound.waiting, lastProgressSeconds: progressSeconds, nowMs: nowMs)
        metrics.ingestStalled.record(stall == nil ? 0 : 1)
        metrics.ingestLastProgress.record(progressSeconds)
        let snapshot = health.snapshot
        switch change {
        case .stalled:
            logger.error("ingest stalled: \(snapshot.reason ?? "")", metadata: ["weir.since": "\(snapshot.since ?? nowMs)"])
            notifier?.send("STATUS=ingest stalled: \(snapshot.reason ?? "")")
        case .resumed(let after):
            logger.notice("ingest resumed after a stall of \(after / 1000)s")
            notifier?.send("STATUS=running")
        case .none:
            break
        }
        if stall == nil { notifier?.send("WATCHDOG=1") }
        guard snapshot.status != written else { return written }
        do {
            try buffer.setIngestState(snapshot.status, sinceMs: snapshot.since, reason: snapshot.reason)
            return snapshot.status
        } catch {
            return written
        }
    }

    static func ms(_ d: Duration) -> Int64 {
        d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }
}
