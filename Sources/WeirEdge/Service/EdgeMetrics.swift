import Metrics
import Synchronization
import WeirCore

/// The edge's Prometheus metrics (through swift-metrics): ingest, buffer depth and age,
/// forwarding, retries, dead letters, filter drops by reason, and per device the filter
/// drops, bad timestamps and readings given the receive time.
final class EdgeMetrics: Sendable {
    let messages = Counter(label: "weir_edge_messages_total")
    let accepted = Counter(label: "weir_edge_readings_accepted_total")
    let deadLetters = Counter(label: "weir_edge_dead_letters_total")
    let badTimestamps = Counter(label: "weir_edge_bad_timestamps_total")
    let clockReplaced = Counter(label: "weir_edge_clock_replaced_total")
    let stampedReceiveTime = Counter(label: "weir_edge_stamped_receive_time_total")
    let chunksSealed = Counter(label: "weir_edge_chunks_sealed_total")
    let evictedReadings = Counter(label: "weir_edge_evicted_readings_total")
    let forwardedReadings = Counter(label: "weir_edge_forwarded_readings_total")
    let forwardedBatches = Counter(label: "weir_edge_forwarded_batches_total")
    let retries = Counter(label: "weir_edge_uplink_retries_total")
    let quarantined = Counter(label: "weir_edge_quarantined_chunks_total")
    let rejected = Counter(label: "weir_edge_rejected_chunks_total")
    let bufferBytes = Gauge(label: "weir_edge_buffer_bytes")
    let bufferChunks = Gauge(label: "weir_edge_buffer_chunks")
    let bufferReadings = Gauge(label: "weir_edge_buffer_readings")
    let oldestAge = Gauge(label: "weir_edge_buffer_oldest_age_seconds")
    let forwardLag = Gauge(label: "weir_edge_forward_lag_seconds")
    let unauthorized = Gauge(label: "weir_edge_uplink_unauthorized")
    let uplinkUp = Gauge(label: "weir_edge_uplink_up")
    /// 1 while messages wait and nothing moves (`LivenessCheck`), else 0.
    let ingestStalled = Gauge(label: "weir_edge_ingest_stalled")
    /// Seconds the inbound hand-over has not moved while messages waited (0: none wait).
    let ingestLastProgress = Gauge(label: "weir_edge_ingest_last_progress_seconds")
    private let filtered: [FilterReason: Counter]
    private let filteredRange = Counter(label: "weir_edge_filter_drops_total", dimensions: [("reason", "range")])
    private let deviceCounters = Mutex<[DeviceCounterKey: Counter]>([:])

    init() {
        var filtered: [FilterReason: Counter] = [:]
        for reason in FilterReason.allCases {
            filtered[reason] = Counter(label: "weir_edge_filter_drops_total", dimensions: [("reason", reason.rawValue)])
        }
        self.filtered = filtered
    }

    func recordSeal(input: SealInput, outcome: SealOutcome, bufferedBytes: Int64) {
        let c = input.counters
        if let v = c["messages"] { messages.increment(by: v) }
        if let v = c["accepted_readings"] { accepted.increment(by: v) }
        if let v = c["dead_letters"] { deadLetters.increment(by: v) }
        if let v = c["bad_timestamp"] { badTimestamps.increment(by: v) }
        if let v = c["clock_replaced"] { clockReplaced.increment(by: v) }
        if let v = c["stamped_receive_time"] { stampedReceiveTime.increment(by: v) }
        if let v = c["filtered_range"] { filteredRange.increment(by: v) }
        for (reason, counter) in filtered {
            if let v = c["filtered_\(reason.rawValue)"] { counter.increment(by: v) }
        }
        for (device, names) in input.deviceCounters {
            for (name, value) in names where value > 0 {
                deviceCounter(device, name).increment(by: value)
            }
        }
        if outcome.chunks > 0 { chunksSealed.increment(by: Int64(outcome.chunks)) }
        if outcome.evictedReadings > 0 { evictedReadings.increment(by: outcome.evictedReadings) }
        bufferBytes.record(bufferedBytes)
    }

    /// A device's counter `name` (a filter reason, `bad_timestamp`, `clock_replaced` or
    /// `stamped_receive_time`),
    /// made when the device first shows up and kept, so a seal does not look every one up
    /// in the metrics registry again.
    private func deviceCounter(_ device: String, _ name: String) -> Counter {
        deviceCounters.withLock { counters in
            let key = DeviceCounterKey(device: device, name: name)
            if let counter = counters[key] { return counter }
            let counter: Counter
            switch name {
            case "bad_timestamp":
                counter = Counter(label: "weir_edge_device_bad_timestamps_total", dimensions: [("device", device)])
            case "clock_replaced":
                counter = Counter(label: "weir_edge_device_clock_replaced_total", dimensions: [("device", device)])
            case "stamped_receive_time":
                counter = Counter(label: "weir_edge_device_stamped_receive_time_total", dimensions: [("device", device)])
            default:
                counter = Counter(label: "weir_edge_device_filter_drops_total", dimensions: [("device", device), ("reason", name)])
            }
            counters[key] = counter
            return counter
        }
    }

    private struct DeviceCounterKey: Hashable {
        var device: String
        var name: String
    }

    func recordStatus(_ status: EdgeStatus) {
        bufferBytes.record(status.bytes)
        bufferChunks.record(status.chunks)
        bufferReadings.record(status.readings)
        oldestAge.record(Double(status.oldestAgeMs) / 1000)
        forwardLag.record(Double(status.forwardLagMs) / 1000)
    }
}
