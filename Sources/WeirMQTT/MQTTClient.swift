import CMosquitto
import Dispatch
import Logging
import Synchronization

/// An MQTT client over libmosquitto: connect once, then libmosquitto's network thread
/// keeps the connection (reconnecting with exponential backoff) while Swift code
/// subscribes, publishes and reads `messages`.
///
/// ```swift
/// let client = try MQTTClient(configuration: .init(clientID: "weir-edge-gw-1"), logger: logger)
/// try await client.connect()
/// try await client.subscribe("devices/+/telemetry", qos: 1)
/// for await message in client.messages { ... }   // or, cheaper: `receive(into:max:)`
/// await client.disconnect()
/// ```
///
/// `messages` (or `receive(into:max:)`) has one consumer. While it does not keep up, the
/// network thread blocks (after `inboundCapacity` messages), so the broker holds the
/// rest — nothing is dropped.
/// Note that libmosquitto acknowledges a QoS 1 message before handing it over, so what
/// sits in the inbound queue is the consumer's to keep.
///
/// `@unchecked Sendable`: the only non-Sendable stored property is the libmosquitto handle.
/// With the threaded network loop (`mosquitto_loop_start`) libmosquitto guards its state
/// with its own mutexes, so `publish`, `subscribe` and `disconnect` may be called from any
/// thread; creation and destruction happen in `init` and `deinit` only.
public final class MQTTClient: @unchecked Sendable {
    private let handle: OpaquePointer
    private let session: MQTTSession
    private let loopRunning = Mutex(false)
    public let configuration: MQTTConfiguration

    private static let libraryInitialized: Bool = {
        mosquitto_lib_init()
        return true
    }()

    /// Creates the client; nothing touches the network until `connect()`.
    public init(configuration: MQTTConfiguration, logger: Logger) throws {
        _ = MQTTClient.libraryInitialized
        guard !configuration.clientID.isEmpty || configuration.cleanSession else {
            throw MQTTError(.badConfiguration, "a persistent session (clean session off) needs a client id")
        }
        guard (1...65535).contains(configuration.port) else {
            throw MQTTError(.badConfiguration, "port \(configuration.port) is out of range (1–65535)")
        }
        self.configuration = configuration
        let session = MQTTSession(configuration: configuration, logger: logger)
        self.session = session
        let userdata = Unmanaged.passUnretained(session).toOpaque()
        let id: String? = configuration.clientID.isEmpty ? nil : configuration.clientID
        guard let handle = mosquitto_new(id, configuration.cleanSession, userdata) else {
            throw MQTTError(.library, "mosquitto_new failed (out of memory or bad client id '\(configuration.clientID.prefix(40))')")
        }
        self.handle = handle
        MQTTClient.registerCallbacks(handle)
        var rc = mosquitto_reconnect_delay_set(handle, UInt32(max(1, configuration.reconnectDelayMin)),
                                               UInt32(max(configuration.reconnectDelayMin, configuration.reconnectDelayMax, 1)), true)
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError.library("setting the reconnect delay", rc) }
        if let username = configuration.username {
            rc = mosquitto_username_pw_set(handle, username, configuration.password)
            if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError.library("setting username/password", rc) }
        }
        if let caFile = configuration.caFile {
            rc = mosquitto_tls_set(handle, caFile, nil, nil, nil, nil)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                throw MQTTError(.badConfiguration, "TLS with CA file '\(caFile)' failed: \(MQTTError.library("tls_set", rc).message)")
            }
            // libmosquitto reports why a handshake failed ("certificate verify failed") only
            // through its log; TLS only, as formatting every packet's log line costs time.
            MQTTClient.registerLogCallback(handle)
        }
    }

    deinit {
        session.inbound.abandon()
        session.state.withLock { $0.closing = true }
        if loopRunning.withLock({ $0 }) {
            mosquitto_disconnect(handle)
            mosquitto_loop_stop(handle, false)
        }
        mosquitto_destroy(handle)
    }

    /// Connects and waits for the broker's CONNACK. Starts libmosquitto's network thread,
    /// which from then on reconnects by itself (exponential backoff) whenever the
    /// connection drops. Throws if the broker refuses us, or when it cannot be reached
    /// within `configuration.connectTimeout` (the network thread is stopped then).
    public func connect() async throws {
        let alreadyConnected = session.state.withLock { $0.connected }
        if alreadyConnected { return }
        let c = configuration
        session.logger.debug("MQTT connecting", metadata: ["weir.broker": "\(c.host):\(c.port)", "weir.client": "\(c.clientID)"])
        do {
            try await withTimeout(c.connectTimeout) {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        self.session.state.withLock { $0.connectWaiter = continuation }
                        // connect_async + loop_start: the network thread does the TCP
                        // connect and keeps retrying while the broker is down.
                        var rc = mosquitto_connect_async(self.handle, c.host, Int32(c.port), Int32(c.keepAlive))
                        if rc != MOSQ_ERR_SUCCESS.rawValue && rc != MOSQ_ERR_ERRNO.rawValue && rc != MOSQ_ERR_CONN_REFUSED.rawValue {
                            self.resumeConnectWaiter(throwing: MQTTError.library("connecting to \(c.host):\(c.port)", rc))
                            return
                        }
                        rc = self.startLoop()
                        if rc != MOSQ_ERR_SUCCESS.rawValue {
                            self.resumeConnectWaiter(throwing: MQTTError.library("starting the network thread", rc))
                        }
                    }
                } onCancel: {
                    self.resumeConnectWaiter(throwing: CancellationError())
                }
            }
        } catch let error as TimeoutError {
            _ = error
            await stopLoop()
            let last = session.state.withLock { $0.lastError }
            throw MQTTError(.unreachable, "no CONNACK from \(c.host):\(c.port) within \(c.connectTimeout.map { "\($0)" } ?? "-")"
                            + (last.map { " (\($0))" } ?? ""))
        } catch {
            await stopLoop()
            throw error
        }
    }

    /// Subscribes to `pattern` (MQTT wildcards `+` and `#`) and waits for the SUBACK.
    /// Throws if the broker does not grant it.
    ///
    /// Only the caller waits: the network thread goes on handing over messages meanwhile,
    /// so the consumer must be taking them (a persistent session's backlog arrives before
    /// the SUBACK, and a full inbound queue would hold the SUBACK back). If the connection
    /// drops first, the re-subscription after the reconnect answers the wait.
    public func subscribe(_ pattern: String, qos: Int32) async throws {
        let id = session.state.withLock { s in
            s.nextWaiterID += 1
            return s.nextWaiterID
        }
        let granted: Int32 = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let cancelled = session.state.withLock { s in
                    if Task.isCancelled { return true }
                    s.subscriptions[pattern] = qos
                    s.grantWaiters[pattern, default: []].append(.init(id: id, continuation: continuation))
                    if s.grantPendingSince[pattern] == nil { s.grantPendingSince[pattern] = .now }
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                var mid: Int32 = 0
                let rc = mosquitto_subscribe(handle, &mid, pattern, qos)
                // Not connected right now: the reconnect re-subscribes every pattern.
                if rc == MOSQ_ERR_NO_CONN.rawValue { return }
                guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                    let waiters = session.state.withLock { $0.granted(pattern) }
                    for waiter in waiters { waiter.continuation.resume(throwing: MQTTError.library("subscribing to '\(pattern)'", rc)) }
                    return
                }
                let (early, waiters): (Int32?, [MQTTSession.GrantWaiter]) = session.state.withLock { s in
                    // The SUBACK may have come before the packet id was recorded.
                    guard let early = s.earlyGrants.removeValue(forKey: mid) else {
                        s.subscribeMids[mid] = pattern
                        return (nil, [])
                    }
                    return (early, s.granted(pattern))
                }
                if let early {
                    for waiter in waiters { waiter.continuation.resume(returning: early) }
                }
            }
        } onCancel: {
            let waiter: MQTTSession.GrantWaiter? = session.state.withLock { s in
                guard let index = s.grantWaiters[pattern]?.firstIndex(where: { $0.id == id }) else { return nil }
                return s.grantWaiters[pattern]?.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
        guard granted <= 2 else {
            session.state.withLock { _ = $0.subscriptions.removeValue(forKey: pattern) }
            throw MQTTError(.subscriptionRejected, "the broker refused the subscription to '\(pattern)' (SUBACK \(granted))")
        }
    }

    /// The subscription that has waited longest for the broker's grant while connected,
    /// and since when (`nil`: none waits).
    public var oldestPendingGrant: (pattern: String, since: ContinuousClock.Instant)? { session.oldestPendingGrant }

    /// Publishes one message. QoS 0 returns once it is queued for sending; QoS 1 and 2
    /// return after the broker acknowledged it (PUBACK / PUBCOMP). Throws if the client is
    /// not connected at the time of the call.
    public func publish(topic: String, payload: [UInt8], qos: Int32, retain: Bool = false) async throws {
        if qos == 0 {
            let rc = payload.withUnsafeBytes { bytes in
                mosquitto_publish(handle, nil, topic, Int32(bytes.count), bytes.baseAddress, 0, retain)
            }
            guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError.library("publishing to '\(topic)'", rc) }
            return
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            var mid: Int32 = 0
            let rc = payload.withUnsafeBytes { bytes in
                mosquitto_publish(handle, &mid, topic, Int32(bytes.count), bytes.baseAddress, qos, retain)
            }
            guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                continuation.resume(throwing: MQTTError.library("publishing to '\(topic)'", rc))
                return
            }
            let done: Bool = session.state.withLock { s in
                if s.earlyPublishes.remove(mid) != nil { return true }
                s.pendingPublishes[mid] = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// The received messages, in arrival order. One consumer; the sequence ends after
    /// `disconnect()` once everything already received has been taken.
    public var messages: AsyncStream<MQTTMessage> {
        let inbound = session.inbound
        return AsyncStream(unfolding: {
            var one: [MQTTMessage] = []
            return await inbound.nextBatch(into: &one, max: 1) ? one.first : nil
        })
    }

    /// Waits for received messages and moves up to `max` of them, in arrival order, into
    /// `batch` (emptied first; its storage is reused). Returns `false` when the messages
    /// have ended (after `disconnect()`, once everything received was taken) or the task
    /// was cancelled while none were waiting. The cheap way to consume: one wake-up per
    /// batch instead of per message.
    ///
    /// ```swift
    /// var batch: [MQTTMessage] = []
    /// while await client.receive(into: &batch, max: 64) {
    ///     for message in batch { ... }
    /// }
    /// ```
    ///
    /// The same single consumer as `messages` (use one or the other). The batch counts
    /// against `inboundCapacity` until the next call: received-but-unprocessed messages
    /// never exceed it.
    public func receive(into batch: inout [MQTTMessage], max: Int) async -> Bool {
        await session.inbound.nextBatch(into: &batch, max: max)
    }

    /// Whether the client is connected right now.
    public var isConnected: Bool { session.state.withLock { $0.connected } }

    /// Why the last connection attempt failed or the connection was lost (`nil` after a
    /// successful connect).
    public var lastError: String? { session.state.withLock { $0.lastError } }

    /// Messages received but not yet taken from `messages`.
    public var pendingMessages: Int { session.inbound.count }

    /// How the hand-over to the consumer is moving (for a liveness check).
    public var inboundProgress: InboundProgress { session.inbound.progress }

    /// Disconnects cleanly and stops the network thread. Messages already received stay in
    /// `messages` until taken (the consumer should drain the sequence to its end); waiting
    /// publishes and subscribes fail. With a persistent session, the broker queues what
    /// arrives from now on for the next connection.
    public func disconnect() async {
        session.state.withLock { $0.closing = true }
        mosquitto_disconnect(handle)
        await stopLoop()
        session.failAllPending(MQTTError(.disconnected, "the client disconnected"))
        session.inbound.finish()
    }

    // MARK: Internals

    private func startLoop() -> Int32 {
        loopRunning.withLock { running in
            if running { return MOSQ_ERR_SUCCESS.rawValue }
            let rc = mosquitto_loop_start(handle)
            if rc == MOSQ_ERR_SUCCESS.rawValue { running = true }
            return rc
        }
    }

    /// Joins the network thread without blocking a Swift concurrency thread: the join can
    /// take as long as the thread's current callback (which may wait for queue space).
    private func stopLoop() async {
        guard loopRunning.withLock({ r in defer { r = false }; return r }) else { return }
        let handle = UncheckedHandle(handle)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                mosquitto_disconnect(handle.pointer)
                mosquitto_loop_stop(handle.pointer, false)
                continuation.resume()
            }
        }
    }

    private func resumeConnectWaiter(throwing error: any Error) {
        let waiter = session.state.withLock { s in
            let w = s.connectWaiter
            s.connectWaiter = nil
            return w
        }
        waiter?.resume(throwing: error)
    }
}

/// Moves the libmosquitto handle to the thread that joins the network loop; safe
/// because libmosquitto's loop control is thread-safe (see `MQTTClient`).
private struct UncheckedHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

struct TimeoutError: Error {}

/// Runs `body`, throwing `TimeoutError` if it takes longer than `timeout` (`nil`: no limit).
func withTimeout<T: Sendable>(_ timeout: Duration?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let timeout else { return try await body() }
    return try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimeoutError()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw TimeoutError() }
        return first
    }
}
