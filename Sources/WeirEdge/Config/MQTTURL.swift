import WeirCore
import WeirMQTT

/// Checks `mqtt.url` at config time, so a typo stops the edge before anything starts.
enum MQTTURL {
    static func check(_ url: String) throws(WeirError) -> MQTTConfiguration.Endpoint {
        do { return try MQTTConfiguration.parseURL(url) } catch { throw WeirError(.badConfig, error.message) }
    }
}
