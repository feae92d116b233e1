import Logging
import ServiceLifecycle

/// Deletes raw readings past `raw_retention` every `interval`, so the dedup table stays
/// bounded. A failed pass is logged and retried at the next tick.
public struct RetentionPruner<C: Clock>: Service where C.Duration == Duration {
    let store: any ReadingStore
    let interval: Duration
    let clock: C
    let logger: Logger

    public init(store: any ReadingStore, interval: Duration, clock: C, logger: Logger) {
        self.store = store
        self.interval = interval
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    try await clock.sleep(for: interval)
                }
            } catch {
                return  // cancelled or shutting down
            }
            do {
                let deleted = try await store.pruneRaw()
                if deleted > 0 { logger.info("pruned raw readings past raw_retention", metadata: ["weir.deleted": "\(deleted)"]) }
            } catch {
                logger.error("pruning raw readings failed", metadata: ["weir.error": "\(error)"])
            }
        }
    }
}
