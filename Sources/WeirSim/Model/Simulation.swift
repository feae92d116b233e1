import WeirCore

/// The deterministic heart of `weir-sim run`: which messages every device publishes,
/// sample by sample, with all the flakiness the options ask for. It does no I/O and
/// knows no clock: the runner asks for sample `tick` of device `device` at wall-clock
/// offset `offsetMs(tick:device:)` and publishes what comes back.
///
/// Same options (seed and start included) → same messages, byte for byte.
///
/// ```swift
/// var simulation = try Simulation(options: options)
/// for tick in 0..<simulation.ticks {
///     for device in 0..<options.devices {
///         for message in simulation.step(tick: tick, device: device) { publish(message) }
///     }
/// }
/// for message in simulation.finish() { publish(message) }
/// ```
public struct Simulation: Sendable {
    public let options: SimulationOptions
    /// What has been emitted so far.
    public private(set) var tally = SimulationTally()
    private var devices: [SimulatedDevice]
    private let metricKinds: [MetricModel.Kind]
    private let jitterBound: Int64

    /// Builds the devices; throws when the options are invalid.
    public init(options: SimulationOptions) throws(WeirError) {
        try options.validate()
        self.options = options
        metricKinds = options.metrics.map(MetricModel.Kind.init(metricName:))
        jitterBound = max(1, min(20, Int64(options.periodMs) / 4))
        devices = []
        devices.reserveCapacity(options.devices)
        for index in 0..<options.devices {
            let device = SimulatedDevice(index: index, options: options, kinds: metricKinds)
            if device.skewMs != 0 { tally.skewedDevices += 1 }
            devices.append(device)
        }
    }

    /// Samples per device.
    public var ticks: Int { options.ticks }

    /// When, after the run began, sample `tick` of `device` is due, in milliseconds.
    /// Devices are spread evenly over the period so the load is smooth.
    public func offsetMs(tick: Int, device: Int) -> Double {
        let period = options.periodMs
        return Double(tick) * period + Double(device) * period / Double(options.devices)
    }

    /// Devices offline right now.
    public var devicesOffline: Int { devices.reduce(0) { $0 + ($1.offlineRemaining > 0 || !$1.backlog.isEmpty ? 1 : 0) } }

    /// Readings devices hold right now (offline backlogs and held-back messages).
    public var readingsHeld: Int {
        devices.reduce(0) { total, device in
            total + device.backlog.count * options.metrics.count
                + device.held.reduce(0) { $0 + (($1.message.kind == .readings) ? $1.message.readings.count : 0) }
        }
    }

    /// The device name for an index.
    public func deviceName(_ index: Int) -> String { devices[index].name }

    /// The messages `device` publishes at sample `tick` (ticks in ascending order per device).
    public mutating func step(tick: Int, device index: Int) -> [SimulatedMessage] {
        var out: [SimulatedMessage] = []
        var device = devices[index]
        defer { devices[index] = device }

        let sample = device.sample(tick: tick, options: options, kinds: metricKinds, jitterBound: jitterBound)

        if device.malformedRNG.chance(options.malformed) {
            let kind = options.malformedKinds[Int(device.malformedRNG.next() % UInt64(options.malformedKinds.count))]
            let metric = options.metrics[Int(device.malformedRNG.next() % UInt64(options.metrics.count))]
            let (topic, payload) = kind.message(device: device.name, options: options, ts: sample.ts, metric: metric,
                                                using: &device.malformedRNG)
            emit(SimulatedMessage(device: index, topic: topic, payload: payload, kind: .malformed(kind), readings: []),
                 from: &device, tick: tick, into: &out)
        }

        if device.offlineRemaining > 0 {
            device.backlog.append(sample)
            device.offlineRemaining -= 1
            return out
        }
        // An episode never starts on the last sample, so every episode has a comeback.
        if tick < ticks - 1, device.offlineRNG.chance(options.offline) {
            let low = Double(options.offlineLength.lowerBound.milliseconds)
            let high = Double(options.offlineLength.upperBound.milliseconds)
            let length = low + device.offlineRNG.unit() * (high - low)
            let samples = max(2, Int((length / options.periodMs).rounded()))
            tally.offlineEpisodes += 1
            device.backlog = [sample]
            device.offlineRemaining = samples - 1
            return out
        }

        let current = readingsMessage(for: [sample], device: device)
        if !device.backlog.isEmpty {
            // Back online: the newest sample first, then the backlog, shuffled, in bursts.
            emit(current, from: &device, tick: tick, into: &out)
            burstBacklog(of: &device, tick: tick, into: &out)
        } else if device.reorderRNG.chance(options.reorder) {
            let delay = 1 + Int(device.reorderRNG.next() % 3)
            tally.reorderedMessages += 1
            device.held.append(HeldMessage(releaseTick: tick + delay, message: current))
        } else {
            emit(current, from: &device, tick: tick, into: &out)
        }

        // Messages held back (reordered, delayed repeats) go out behind the newer ones.
        if device.held.contains(where: { $0.releaseTick <= tick }) {
            var keep: [HeldMessage] = []
            for held in device.held {
                if held.releaseTick <= tick {
                    emit(held.message, from: &device, tick: tick, into: &out)
                } else {
                    keep.append(held)
                }
            }
            device.held = keep
        }
        return out
    }

    /// Everything devices still hold when sampling ends: backlogs of devices that are
    /// offline, held-back messages and delayed repeats. After this the truth is complete.
    public mutating func finish() -> [SimulatedMessage] {
        var out: [SimulatedMessage] = []
        for index in devices.indices {
            var device = devices[index]
            burstBacklog(of: &device, tick: ticks, into: &out)
            device.offlineRemaining = 0
            // Held messages may hold more repeats once emitted; drain until empty.
            while !device.held.isEmpty {
                let held = device.held.sorted { $0.releaseTick < $1.releaseTick }
                device.held = []
                for item in held {
                    emit(item.message, from: &device, tick: Int.max / 2, into: &out)
                }
            }
            devices[index] = device
        }
        return out
    }

    /// Every message of the whole run in publishing order, without pacing (for tests and
    /// for computing a truth without a broker).
    public mutating func allMessages() -> [SimulatedMessage] {
        var out: [SimulatedMessage] = []
        for tick in 0..<ticks {
            for device in 0..<options.devices {
                out += step(tick: tick, device: device)
            }
        }
        return out + finish()
    }

    // MARK: - Emitting

    private mutating func emit(_ message: SimulatedMessage, from device: inout SimulatedDevice, tick: Int,
                               into out: inout [SimulatedMessage]) {
        out.append(message)
        tally.messages += 1
        switch message.kind {
        case .malformed(let kind):
            tally.malformed[kind.name, default: 0] += 1
        case .duplicate:
            tally.duplicateMessages += 1
            tally.duplicateReadings += message.readings.count
        case .readings:
            tally.readings += message.readings.count
            if device.dupRNG.chance(options.duplicates) {
                var copy = message
                copy.kind = .duplicate
                if device.dupRNG.chance(0.5) {
                    out.append(copy)
                    tally.messages += 1
                    tally.duplicateMessages += 1
                    tally.duplicateReadings += copy.readings.count
                } else {
                    let delay = 1 + Int(device.dupRNG.next() % 5)
                    device.held.append(HeldMessage(releaseTick: tick &+ delay, message: copy))
                }
            }
        }
    }

    private mutating func burstBacklog(of device: inout SimulatedDevice, tick: Int, into out: inout [SimulatedMessage]) {
        guard !device.backlog.isEmpty else { return }
        var backlog = device.backlog
        device.backlog = []
        tally.backlogReadings += backlog.count * options.metrics.count
        backlog.shuffle(using: &device.burstRNG)
        var start = 0
        while start < backlog.count {
            let size = min(backlog.count - start, 1 + Int(device.burstRNG.next() % 5))
            let message = readingsMessage(for: Array(backlog[start..<(start + size)]), device: device)
            emit(message, from: &device, tick: tick, into: &out)
            start += size
        }
    }

    /// A JSON message with one sample (an object) or several (an array of objects).
    private func readingsMessage(for samples: [Sample], device: SimulatedDevice) -> SimulatedMessage {
        var readings: [Reading] = []
        readings.reserveCapacity(samples.count * options.metrics.count)
        var json = samples.count == 1 ? "" : "["
        for (n, sample) in samples.enumerated() {
            if n > 0 { json += "," }
            json += #"{"ts":"# + String(sample.ts)
            for (m, metric) in options.metrics.enumerated() {
                let value = sample.values[m]
                json += #",""# + metric + #"":"#
                if metricKinds[m] == .boolean {
                    json += value == 0 ? "false" : "true"
                } else {
                    json += String(describing: value)
                }
                readings.append(Reading(device: device.name, metric: metric, ts: sample.ts, value: value))
            }
            json += "}"
        }
        if samples.count != 1 { json += "]" }
        return SimulatedMessage(device: device.index, topic: device.topic, payload: Array(json.utf8),
                                kind: .readings, readings: readings)
    }
}
