import Logging
import Testing
import WeirMQTT
import WeirTestSupport

@Suite("WeirMQTT batch receive against a real mosquitto")
struct MQTTBatchReceiveTests {
    static let logger = Logger(label: "mqtt-batch-test")

    @Test("receive(into:max:) with a slow consumer: every QoS 1 message once, in order; batch plus queue never exceed the capacity")
    func batchesKeepOrderAndBound() async throws {
        try await withTemporaryDirectory { dir in
            try await withMosquitto(in: dir.path) { broker in
                let capacity = 8
                let sub = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "batch-slow", inboundCapacity: capacity),
                                         logger: Self.logger)
                try await sub.connect()
                try await sub.subscribe("t/#", qos: 1)
                let pub = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "batch-fast", cleanSession: true),
                                         logger: Self.logger)
                try await pub.connect()
                let n = 2000
                for i in 0..<n { try await pub.publish(topic: "t/a", payload: Array("\(i)".utf8), qos: 1) }
                var received: [Int] = []
                var batch: [MQTTMessage] = []
                var largest = 0
                var worstHeld = 0
                while received.count < n, await sub.receive(into: &batch, max: 5) {
                    largest = max(largest, batch.count)
                    worstHeld = max(worstHeld, batch.count + sub.pendingMessages)
                    received += batch.map { Int(String(decoding: $0.payload, as: UTF8.self)) ?? -1 }
                    if received.count % 100 < 5 { try await Task.sleep(for: .milliseconds(2)) }
                }
                #expect(received == Array(0..<n))
                #expect(largest <= 5, "a batch larger than asked for: \(largest)")
                #expect(largest > 1, "the slow consumer never got more than one message per wake-up")
                #expect(worstHeld <= capacity, "batch + queue held \(worstHeld) messages, more than the capacity \(capacity)")
                await pub.disconnect()
                await sub.disconnect()
                // Disconnected and drained: the messages have ended.
                #expect(await sub.receive(into: &batch, max: 5) == false)
                #expect(batch.isEmpty)
            }
        }
    }

    @Test("a consumer parked in receive(into:max:) ends when its task is cancelled")
    func cancellationEndsParkedConsumer() async throws {
        try await withTemporaryDirectory { dir in
            try await withMosquitto(in: dir.path) { broker in
                let sub = try MQTTClient(configuration: MQTTConfiguration(port: broker.port, clientID: "batch-idle"), logger: Self.logger)
                try await sub.connect()
                try await sub.subscribe("t/#", qos: 1)
                let consumer = Task {
                    var batch: [MQTTMessage] = []
                    var batches = 0
                    while await sub.receive(into: &batch, max: 64) { batches += 1 }
                    return batches
                }
                try await Task.sleep(for: .milliseconds(200))
                consumer.cancel()
                let clock = ContinuousClock()
                let start = clock.now
                #expect(await consumer.value == 0)
                #expect(clock.now - start < .seconds(2))
                await sub.disconnect()
            }
        }
    }
}
