import CMosquitto
import Logging

extension MQTTClient {
    /// Registers the C callbacks. They are plain `@convention(c)` functions that capture
    /// nothing; the `MQTTSession` comes back through libmosquitto's `userdata` pointer.
    /// This runs from non-isolated code on purpose: a callback formed inside a global
    /// actor's context would be inferred as isolated to it and trap when libmosquitto
    /// calls it on its own thread.
    nonisolated static func registerCallbacks(_ handle: OpaquePointer) {
        mosquitto_connect_callback_set(handle) { mosq, userdata, rc in
            guard let userdata else { return }
            Unmanaged<MQTTSession>.fromOpaque(userdata).takeUnretainedValue().didConnect(mosq, rc: rc)
        }
        mosquitto_disconnect_callback_set(handle) { _, userdata, rc in
            guard let userdata else { return }
            Unmanaged<MQTTSession>.fromOpaque(userdata).takeUnretainedValue().didDisconnect(rc: rc)
        }
        mosquitto_publish_callback_set(handle) { _, userdata, mid in
            guard let userdata else { return }
            Unmanaged<MQTTSession>.fromOpaque(userdata).takeUnretainedValue().didPublish(mid: mid)
        }
        mosquitto_subscribe_callback_set(handle) { _, userdata, mid, count, granted in
            guard let userdata else { return }
            let qos: Int32 = count > 0 ? (granted?[0] ?? 128) : 128
            Unmanaged<MQTTSession>.fromOpaque(userdata).takeUnretainedValue().didSubscribe(mid: mid, grantedQoS: qos)
        }
        mosquitto_message_callback_set(handle) { _, userdata, message in
            guard let userdata, let message else { return }
            // Copy out now: libmosquitto frees the message when the callback returns.
            let m = message.pointee
            let topic = m.topic.map { String(cString: $0) } ?? ""
            var payload: [UInt8] = []
            if let bytes = m.payload, m.payloadlen > 0 {
                payload = Array(UnsafeRawBufferPointer(start: bytes, count: Int(m.payloadlen)))
            }
            let copied = MQTTMessage(topic: topic, payload: payload, qos: m.qos, mid: m.mid, retain: m.retain)
            let session = Unmanaged<MQTTSession>.fromOpaque(userdata).takeUnretainedValue()
            if !session.didReceive(copied) {
                session.logger.error("MQTT message dropped: the consumer has stopped", metadata: ["weir.topic": "\(topic)"])
            }
        }
    }

    /// Hands libmosquitto's error-level log lines (the OpenSSL reason of a failed TLS
    /// handshake) to the session. Non-isolated for the same reason as the others.
    nonisolated static func registerLogCallback(_ handle: OpaquePointer) {
        mosquitto_log_callback_set(handle) { _, userdata, level, text in
            guard let userdata, let text, level & Int32(MOSQ_LOG_ERR) != 0 else { return }
            Unmanaged<MQTTSession>.fromOpaque(userdata).takeUnretainedValue().didLogError(String(cString: text))
        }
    }
}
