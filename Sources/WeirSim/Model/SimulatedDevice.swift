import WeirCore

/// A message a device holds back until `releaseTick`.
struct HeldMessage: Sendable {
    var releaseTick: Int
    var message: SimulatedMessage
}

/// One device's state: its metric models, its clock, and what it is holding back. Every
/// flaky behaviour has its own random stream.
struct SimulatedDevice: Sendable {
    let index: Int
    let name: String
    let topic: String
    let skewMs: Int64
    var models: [MetricModel]
    var valuesRNG: SeededGenerator
    var jitterRNG: SeededGenerator
    var offlineRNG: SeededGenerator
    var dupRNG: SeededGenerator
    var reorderRNG: SeededGenerator
    var malformedRNG: SeededGenerator
    var burstRNG: SeededGenerator
    var offlineRemaining = 0
    var backlog: [Sample] = []
    var held: [HeldMessage] = []

    init(index: Int, options: SimulationOptions, kinds: [MetricModel.Kind]) {
        self.index = index
        name = options.deviceName(index)
        topic = options.topic(for: name)
        let seed = options.seed
        var skewRNG = SeededGenerator.stream(seed: seed, device: index, "skew")
        if skewRNG.chance(options.skew) {
            let low = options.skewRange.lowerBound
            let span = UInt64(options.skewRange.upperBound - low)
            var skew = low + Int64(skewRNG.next() % (span + 1))
            // A skew of a few ms is no skew; make it noticeable.
            if abs(skew) < 1000 { skew = skew < 0 ? -1000 : 1000 }
            skewMs = skew
        } else {
            skewMs = 0
        }
        var modelRNG = SeededGenerator.stream(seed: seed, device: index, "models")
        models = kinds.map { MetricModel(kind: $0, using: &modelRNG) }
        valuesRNG = .stream(seed: seed, device: index, "values")
        jitterRNG = .stream(seed: seed, device: index, "jitter")
        offlineRNG = .stream(seed: seed, device: index, "offline")
        dupRNG = .stream(seed: seed, device: index, "dup")
        reorderRNG = .stream(seed: seed, device: index, "reorder")
        malformedRNG = .stream(seed: seed, device: index, "malformed")
        burstRNG = .stream(seed: seed, device: index, "burst")
    }

    /// Sample `tick`: its event time (device clock, with jitter and skew) and values.
    mutating func sample(tick: Int, options: SimulationOptions, kinds: [MetricModel.Kind], jitterBound: Int64) -> Sample {
        let period = options.periodMs
        let offset = Double(tick) * period + Double(index) * period / Double(options.devices)
        let jitter = Int64(jitterRNG.next() % UInt64(jitterBound))
        let ts = options.start + Int64(offset.rounded(.down)) + jitter + skewMs
        let dt = period / 1000
        var values: [Double] = []
        values.reserveCapacity(models.count)
        for m in models.indices {
            values.append(models[m].next(ts: ts, dt: dt, using: &valuesRNG))
        }
        return Sample(ts: ts, values: values)
    }
}
