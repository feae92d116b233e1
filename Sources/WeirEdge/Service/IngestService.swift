import Logging
import ServiceLifecycle
import WeirCore
import WeirMQTT

/// Reads the broker: connects with the persistent session, subscribes, and feeds every
/// message through the `ChunkSealer`. On graceful shutdown it disconnects first, drains
/// what libmosquitto already handed over (and acknowledged), then seals everything —
/// including open downsample buckets — before it returns.
///
/// The consumer runs from before the connect until the inbound queue ends: a persistent
/// session's backlog arrives right after the CONNACK, before any SUBACK, and fills the
/// inbound queue; were the consumer to wait for the subscriptions, the network thread
/// would block on the full queue and never read the SUBACK it waits for. So connecting
/// and subscribing run beside the consumer and nothing waits for them but `onReady`.
struct IngestService: Service {
    let configuration: EdgeConfiguration
    let client: MQTTClient
    let sealer: ChunkSealer
    let logger: Logger
    /// Called once subscribed (prints the ready line, tells systemd).
    let onReady: @Sendable () -> Void
    /// Most messages taken per wake-up (a quarter of a smaller inbound queue), so the
    /// network thread keeps room to read while a batch is processed: the batch in hand
    /// counts against `mqtt.inbound_capacity`.
    static let batchSize = 64
    /// How long the consumer lets a small batch gather before taking it. Far below the
    /// flush interval; with the default queue (256, less 64 in hand) the network thread
    /// cannot fill it within this time below ~190,000 messages/s, so it does not wait.
    static let gatherTime: Duration = .milliseconds(1)
    /// Smaller queues skip the gathering: a millisecond of a fast stream might not fit.
    static let gatherMinCapacity = 128

    func run() async throws {
        defer { try? sealer.buffer.setBrokerState(.stopped, error: nil) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Ends once the queue is finished (after `disconnect`) and drained.
            group.addTask { await consume() }
            do {
                try await connectAndSubscribe()
            } catch {
                await client.disconnect()
                try await group.waitForAll()
                throw error
            }
            // Stop reading on shutdown: the queue then ends after the messages it holds.
            try? await gracefulShutdown()
            await client.disconnect()
            try await group.waitForAll()
        }
        await sealRetrying(final: true)
        logger.info("ingest stopped; everything received is sealed")
    }

    /// Takes what the network thread hands over, a batch per wake-up, until the queue ends.
    private func consume() async {
        let chunkMax = configuration.buffer.chunkMaxReadings
        let capacity = client.configuration.inboundCapacity
        let batchLimit = max(1, min(Self.batchSize, capacity / 4))
        let gather = capacity >= Self.gatherMinCapacity
        var batch: [MQTTMessage] = []
        batch.reserveCapacity(batchLimit)
        while await client.receive(into: &batch, max: batchLimit) {
            let backlog = batch.count == batchLimit
            // The hand-over goes through the pipeline at once (decoded into one buffer,
            // filtered in one call); a chunk that reached its size is sealed after it.
            if sealer.ingest(batch) >= chunkMax {
                await sealRetrying(final: false)
            }
            // Messages are flowing but we are ahead of them: let the next batch gather
            // for a moment, so a wake-up carries dozens of messages, not one. (While
            // nothing arrives, `receive` parks without polling.)
            if gather && !backlog { try? await Task.sleep(for: Self.gatherTime) }
        }
    }

    /// Connects (retrying while the broker is unreachable), subscribes, reports ready, then
    /// watches the connection; all of it ends at graceful shutdown.
    private func connectAndSubscribe() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await connectUntilUp()
                try Task.checkCancellation()
                for sub in configuration.mqtt.subscriptions {
                    try await client.subscribe(sub.topic.subscription, qos: sub.qos)
                    logger.info("subscribed", metadata: ["weir.topic": "\(sub.topic.subscription)", "weir.format": "\(sub.format.rawValue)"])
                }
                onReady()
                await watchBroker()
            }
        } catch is CancellationError {
            return
        }
    }

    /// Seals, retrying while the buffer file refuses (disk full, I/O error): the readings
    /// were acknowledged to the broker, so they must not be dropped; meanwhile the reader
    /// waits, and the broker holds what comes next.
    private func sealRetrying(final: Bool) async {
        var attempt = 0
        while true {
            do {
                try sealer.sealNow(final: final)
                return
            } catch {
                attempt += 1
                logger.error("sealing a chunk failed; retrying (readings stay in memory)",
                             metadata: ["weir.error": "\(error)", "weir.attempt": "\(attempt)"])
                if final && attempt >= 30 { return }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Connects, retrying while the broker is unreachable (it may start after the edge).
    /// Keeps `status`'s broker line current: libmosquitto reconnects by itself, so the
    /// connection is looked at every second and a change is written to the buffer file.
    private func watchBroker() async {
        var wasConnected = true
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let connected = client.isConnected
            if connected == wasConnected || Task.isCancelled { continue }
            wasConnected = connected
            try? sealer.buffer.setBrokerState(connected ? .connected : .notConnected, error: connected ? nil : client.lastError ?? "connection lost")
        }
    }

    private func connectUntilUp() async throws {
        var delay: Duration = .seconds(1)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await client.connect()
                try? sealer.buffer.setBrokerState(.connected, error: nil)
                logger.info("connected to the broker", metadata: ["weir.broker": "\(configuration.mqtt.url)", "weir.client": "\(configuration.mqttClientID)"])
                return
            } catch let error as MQTTError where error.code == .refused {
                try? sealer.buffer.setBrokerState(.notConnected, error: error.message)
                throw error
            } catch let error as MQTTError where error.code == .tls {
                try? sealer.buffer.setBrokerState(.notConnected, error: error.message)
                // Not a broker that is still starting: say so loudly, and keep trying (the
                // broker's certificate may be the one that gets fixed).
                logger.error("cannot connect to the broker: \(error.message); nothing is received until this is fixed; retrying",
                             metadata: ["weir.broker": "\(configuration.mqtt.url)", "weir.ca_file": "\(configuration.mqtt.caFile ?? "-")"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            } catch {
                try? sealer.buffer.setBrokerState(.notConnected, error: "\(error)")
                logger.warning("broker not reachable yet; retrying", metadata: ["weir.error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }
}
