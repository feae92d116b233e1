import Logging
import ServiceLifecycle

/// Seals the pending readings every `flush_interval`, and refreshes the buffer gauges.
struct SealerService: Service {
    let interval: Duration
    let sealer: ChunkSealer
    let metrics: EdgeMetrics
    let logger: Logger

    func run() async throws {
        var ticks = 0
        let clock = ContinuousClock()
        var next = clock.now + interval
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // A deadline-based tick, so sealing time does not stretch the interval.
            let deadline = next
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(until: deadline, clock: clock) } } catch { break }
            next = max(next + interval, clock.now)
            do {
                try sealer.sealNow()
            } catch {
                logger.error("sealing a chunk failed; the readings stay in memory and are retried", metadata: ["weir.error": "\(error)"])
            }
            ticks += 1
            if ticks % 10 == 0, let status = try? sealer.buffer.status() {
                metrics.recordStatus(status)
            }
        }
    }
}
