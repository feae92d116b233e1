import CMosquitto
import Logging
import Synchronization

/// The Swift side of one libmosquitto handle: the state its callbacks touch.
///
/// libmosquitto calls back on its own network thread. The callbacks (see
/// `MQTTClient+Callbacks.swift`) find this object through the `userdata` pointer, copy
/// what they need out of the C structures before returning, and complete waiting Swift
/// continuations or push into the `InboundQueue`. Everything mutable sits in one `Mutex`.
final class MQTTSession: Sendable {
    struct State: ~Copyable {
        var connected = false
        var everConnected = false
        var closing = false
        var connectWaiter: CheckedContinuation<Void, any Error>?
        /// Publishes waiting for their PUBACK, by packet id.
        var pendingPublishes: [Int32: CheckedContinuation<Void, any Error>] = [:]
        /// PUBACKs that arrived before the publisher registered its wait.
        var earlyPublishes: Set<Int32> = []
        /// Subscriptions to renew after a reconnect (needed when the session is clean).
        var subscriptions: [String: Int32] = [:]
        /// The pattern of every SUBSCRIBE sent and not yet answered, by packet id (ours
        /// and the re-subscriptions after a reconnect alike).
        var subscribeMids: [Int32: String] = [:]
        /// SUBACKs that arrived before the subscriber registered its packet id.
        var earlyGrants: [Int32: Int32] = [:]
        /// Callers waiting for a pattern to be granted. A grant of the pattern answers them,
        /// whichever SUBSCRIBE it answers: after a reconnect the re-subscription does.
        var grantWaiters: [String: [GrantWaiter]] = [:]
        var nextWaiterID = 0
        /// Since when each pattern's grant has been awaited.
        var grantPendingSince: [String: ContinuousClock.Instant] = [:]
        /// When the current connection was made.
        var connectedAt: ContinuousClock.Instant?
        var lastError: String?
    }

    /// A caller of `subscribe` waiting for its pattern's grant.
    struct GrantWaiter {
        var id: Int
        var continuation: CheckedContinuation<Int32, any Error>
    }

    let state = Mutex(State())
    let inbound: InboundQueue
    let logger: Logger
    let configuration: MQTTConfiguration

    init(configuration: MQTTConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.inbound = InboundQueue(capacity: configuration.inboundCapacity)
    }

    // MARK: Callbacks (network thread)

    func didConnect(_ mosq: OpaquePointer?, rc: Int32) {
        if rc == 0 {
            let (waiter, wasConnectedBefore, resubscribe) = state.withLock { s in
                s.connected = true
                s.connectedAt = .now
                let before = s.everConnected
                s.everConnected = true
                s.lastError = nil
                let w = s.connectWaiter
                s.connectWaiter = nil
                return (w, before, before ? s.subscriptions : [:])
            }
            if wasConnectedBefore {
                logger.info("MQTT reconnected", metadata: ["weir.broker": "\(configuration.host):\(configuration.port)"])
                for (pattern, qos) in resubscribe {
                    var mid: Int32 = 0
                    let rc = mosquitto_subscribe(mosq, &mid, pattern, qos)
                    if rc == MOSQ_ERR_SUCCESS.rawValue {
                        // On this thread: its SUBACK cannot come before this is recorded.
                        state.withLock { s in
                            s.subscribeMids[mid] = pattern
                            if s.grantPendingSince[pattern] == nil { s.grantPendingSince[pattern] = .now }
                        }
                    } else {
                        logger.warning("MQTT re-subscribe failed", metadata: ["weir.topic": "\(pattern)", "weir.error": "\(MQTTError.library("subscribe", rc).message)"])
                    }
                }
            }
            waiter?.resume()
        } else {
            let reason = mosquitto_connack_string(rc).map { String(cString: $0) } ?? "code \(rc)"
            let error = MQTTError(.refused, "the broker at \(configuration.host):\(configuration.port) refused the connection: \(reason)")
            let waiter = state.withLock { s in
                s.lastError = error.message
                let w = s.connectWaiter
                s.connectWaiter = nil
                return w
            }
            logger.error("MQTT connection refused", metadata: ["weir.error": "\(reason)"])
            waiter?.resume(throwing: error)
        }
    }

    func didDisconnect(rc: Int32) {
        let closing = state.withLock { s in
            s.connected = false
            s.connectedAt = nil
            if rc != 0 { s.lastError = "connection lost: " + (mosquitto_strerror(rc).map { String(cString: $0) } ?? "code \(rc)") }
            return s.closing
        }
        if !closing {
            logger.warning("MQTT connection lost; reconnecting with backoff",
                           metadata: ["weir.broker": "\(configuration.host):\(configuration.port)", "weir.rc": "\(rc)"])
        }
    }

    /// An error line from libmosquitto's log (registered for TLS connections only). A TLS
    /// failure ("OpenSSL Error[0]: ...: certificate verify failed") becomes the last error,
    /// and fails a waiting `connect()` at once: after a failed first handshake the network
    /// thread gives up, so waiting for a CONNACK would only end in a vaguer timeout.
    func didLogError(_ text: String) {
        guard text.contains("OpenSSL") || text.contains("TLS") || text.contains("SSL") else { return }
        let reason = text.split(separator: ":").last.map { String($0.drop(while: { $0 == " " })) } ?? text
        let c = configuration
        let error = MQTTError(.tls, "TLS handshake with \(c.host):\(c.port) failed: \(reason) (\(text.prefix(200))); check that "
                              + "\(c.caFile ?? "the CA file") is the CA that signed the broker's certificate and that it names \(c.host)")
        let (waiter, connected) = state.withLock { s in
            s.lastError = s.connected ? "TLS error: \(text.prefix(200))" : error.message
            let w = s.connectWaiter
            s.connectWaiter = nil
            return (w, s.connected)
        }
        if let waiter {
            waiter.resume(throwing: error)   // connect() throws it; its caller reports it
        } else if connected {
            // The connection broke (the broker went away mid-session); didDisconnect follows.
            logger.warning("MQTT TLS error on the connection", metadata: ["weir.error": "\(text.prefix(200))"])
        } else {
            logger.error("MQTT TLS handshake failed; reconnecting with backoff", metadata: ["weir.error": "\(error.message)"])
        }
    }

    func didPublish(mid: Int32) {
        let waiter = state.withLock { s in
            if let w = s.pendingPublishes.removeValue(forKey: mid) { return Optional(w) }
            s.earlyPublishes.insert(mid)
            return nil
        }
        waiter?.resume()
    }

    func didSubscribe(mid: Int32, grantedQoS: Int32) {
        let (pattern, waiters): (String?, [GrantWaiter]) = state.withLock { s in
            guard let pattern = s.subscribeMids.removeValue(forKey: mid) else {
                s.earlyGrants[mid] = grantedQoS
                return (nil, [])
            }
            return (pattern, s.granted(pattern))
        }
        if let pattern, waiters.isEmpty, grantedQoS > 2 {
            logger.error("MQTT re-subscription refused by the broker", metadata: ["weir.topic": "\(pattern)", "weir.granted": "\(grantedQoS)"])
        }
        for waiter in waiters { waiter.continuation.resume(returning: grantedQoS) }
    }

    /// Returns `false` when the message could not be handed over (consumer gone).
    func didReceive(_ message: MQTTMessage) -> Bool {
        inbound.push(message)
    }

    // MARK: Subscriptions

    /// The subscription waiting longest for its grant while connected, and since when
    /// (counted from the connection, so a broker that was down does not count).
    var oldestPendingGrant: (pattern: String, since: ContinuousClock.Instant)? {
        state.withLock { s in
            guard s.connected, let connectedAt = s.connectedAt,
                  let oldest = s.grantPendingSince.min(by: { $0.value < $1.value }) else { return nil }
            return (oldest.key, max(oldest.value, connectedAt))
        }
    }

    // MARK: Shutdown

    /// Fails everything still waiting: the client is going away.
    func failAllPending(_ error: MQTTError) {
        let (connect, publishes, subscribes) = state.withLock { s in
            let c = s.connectWaiter
            s.connectWaiter = nil
            let p = Array(s.pendingPublishes.values)
            s.pendingPublishes.removeAll()
            let sub = s.grantWaiters.values.flatMap { $0.map(\.continuation) }
            s.grantWaiters.removeAll()
            s.grantPendingSince.removeAll()
            return (c, p, sub)
        }
        connect?.resume(throwing: error)
        for p in publishes { p.resume(throwing: error) }
        for s in subscribes { s.resume(throwing: error) }
    }
}

extension MQTTSession.State {
    /// `pattern` was granted (or refused): no longer pending; returns who waited for it.
    mutating func granted(_ pattern: String) -> [MQTTSession.GrantWaiter] {
        grantPendingSince.removeValue(forKey: pattern)
        return grantWaiters.removeValue(forKey: pattern) ?? []
    }
}
