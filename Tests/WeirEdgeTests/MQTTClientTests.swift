import Logging
import Testing
import WeirMQTT
import WeirTestSupport

@Suite("WeirMQTT against a real mosquitto")
struct MQTTClientTests {
    static let logger = Logger(label: "mqtt-test")

    /// Makes `config`'s persistent session (subscribed to `devices/+/telemetry`), leaves
    /// it, and has the broker queue `count` messages for it (payload: the index as text).
    /// Returns the connected publisher.
    static func queueBacklog(for config: MQTTConfiguration, broker: MosquittoBroker, count: Int) async throws -> MQTTClient {
        let first = try MQTTClient(configuration: config, logger: logger)
        try await first.connect()
        try await first.subscribe("devices/+/telemetry", qos: 1)
        await first.disconnect()
        let pub = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "pub", cleanSession: true), logger: logger)
        try await pub.connect()
        for i in 0..<count { try await pub.publish(topic: "devices/d\(i % 3)/telemetry", payload: Array("\(i)".utf8), qos: 1) }
        return pub
    }

    @Test("mqtt:// URLs parse, bad ones say why", arguments: [
        ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883, false),
        ("mqtt://broker", "broker", 1883, false),
        ("mqtts://user:pw@broker:9999", "broker", 9999, true),
        ("tcp://[::1]:1884", "::1", 1884, false),
    ])
    func urls(url: String, host: String, port: Int, tls: Bool) throws {
        let e = try MQTTConfiguration.parseURL(url)
        #expect(e.host == host)
        #expect(e.port == port)
        #expect(e.tls == tls)
        for bad in ["http://x", "mqtt://", "mqtt://x:99999", "broker:1883", "mqtt://x/path"] {
            #expect(throws: MQTTError.self) { try MQTTConfiguration.parseURL(bad) }
        }
    }

    @Test("a slow consumer gets every QoS 1 message in order: the network thread waits, nothing is dropped")
    func backpressureNeverDrops() async throws {
        try await withTemporaryDirectory { dir in
            try await withMosquitto(in: dir.path) { broker in
                let sub = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "slow", inboundCapacity: 8), logger: Self.logger)
                try await sub.connect()
                try await sub.subscribe("t/#", qos: 1)
                let pub = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "fast", cleanSession: true), logger: Self.logger)
                try await pub.connect()
                let n = 2000
                for i in 0..<n { try await pub.publish(topic: "t/a", payload: Array("\(i)".utf8), qos: 1) }
                var received: [Int] = []
                var maxPending = 0
                for await m in sub.messages {
                    maxPending = max(maxPending, sub.pendingMessages)
                    received.append(Int(String(decoding: m.payload, as: UTF8.self)) ?? -1)
                    if received.count % 100 == 0 { try await Task.sleep(for: .milliseconds(2)) }
                    if received.count == n { break }
                }
                #expect(received == Array(0..<n))
                #expect(maxPending <= 8, "the inbound queue grew past its bound: \(maxPending)")
                await pub.disconnect()
                await sub.disconnect()
            }
        }
    }

    @Test("a persistent session: messages published while the subscriber is away arrive when it comes back")
    func persistentSession() async throws {
        try await withTemporaryDirectory { dir in
            try await withMosquitto(in: dir.path) { broker in
                let config = MQTTConfiguration(port: broker.port, clientID: "edge-like")
                let pub = try await Self.queueBacklog(for: config, broker: broker, count: 1500)

                let again = try MQTTClient(configuration: config, logger: Self.logger)
                try await again.connect()
                var count = 0
                for await _ in again.messages {
                    count += 1
                    if count == 1500 { break }
                }
                #expect(count == 1500)
                await again.disconnect()
                await pub.disconnect()
            }
        }
    }

    @Test("subscribing while the session's backlog pours in completes, however small the inbound queue: the consumer drains from the connect on",
          arguments: [1, 4, 64])
    func subscribeWhileTheBacklogArrives(capacity: Int) async throws {
        try await withTemporaryDirectory { dir in
            try await withMosquitto(in: dir.path) { broker in
                let config = MQTTConfiguration(port: broker.port, clientID: "backlog-\(capacity)", inboundCapacity: capacity)
                let n = max(40 * capacity, 400)
                let pub = try await Self.queueBacklog(for: config, broker: broker, count: n)

                let again = try MQTTClient(configuration: config, logger: Self.logger)
                let consumer = Task {
                    var received: [Int] = []
                    var batch: [MQTTMessage] = []
                    while received.count < n, await again.receive(into: &batch, max: 8) {
                        received += batch.map { Int(String(decoding: $0.payload, as: UTF8.self)) ?? -1 }
                    }
                    return received
                }
                try await again.connect()
                // The backlog fills the queue before the SUBACK comes; the consumer frees it.
                try await again.subscribe("devices/+/telemetry", qos: 1)
                #expect(again.oldestPendingGrant == nil)
                let received = await consumer.value
                #expect(received == Array(0..<n))
                await again.disconnect()
                await pub.disconnect()
            }
        }
    }

    @Test("a subscribe made while the broker is away is answered by the re-subscription after the reconnect")
    func subscribeAcrossReconnect() async throws {
        try await withTemporaryDirectory { dir in
            var broker = try await MosquittoBroker.start(in: dir.path)
            do {
                var config = MQTTConfiguration(port: broker.port, clientID: "resub")
                config.reconnectDelayMax = 1
                let client = try MQTTClient(configuration: config, logger: Self.logger)
                try await client.connect()
                await broker.stop()
                while client.isConnected { try await Task.sleep(for: .milliseconds(20)) }
                let subscribing = Task { try await client.subscribe("t/#", qos: 1) }
                try await Task.sleep(for: .milliseconds(300))
                #expect(client.oldestPendingGrant == nil, "not connected: no grant can be late")
                broker = try await MosquittoBroker.start(in: dir.path, port: broker.port)
                try await subscribing.value
                #expect(client.oldestPendingGrant == nil)
                let pub = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "pub", cleanSession: true), logger: Self.logger)
                try await pub.connect()
                try await pub.publish(topic: "t/x", payload: [1, 2, 3], qos: 1)
                var batch: [MQTTMessage] = []
                _ = await client.receive(into: &batch, max: 1)
                #expect(batch.first?.payload == [1, 2, 3])
                await pub.disconnect()
                await client.disconnect()
                await broker.stop()
            } catch {
                await broker.stop()
                throw error
            }
        }
    }

    @Test("an unreachable broker is an error after the connect timeout, not a hang")
    func unreachable() async throws {
        var config = MQTTConfiguration(port: try FreePort.allocate(), clientID: "nobody")
        config.connectTimeout = .seconds(1)
        let client = try MQTTClient(configuration: config, logger: Self.logger)
        await #expect(throws: MQTTError.self) { try await client.connect() }
    }
}
