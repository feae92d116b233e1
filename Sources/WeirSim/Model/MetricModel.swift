import Foundation

/// How one metric of one device evolves: a random walk at the sensor's resolution around
/// a daily cycle, a counter that only grows, or a switch that flips now and then.
///
/// Values are always a whole number of resolution steps divided by a power of ten, so
/// their JSON text (`21.5`) reads back as exactly the double the truth file holds.
public struct MetricModel: Sendable, Hashable {
    /// The shape of a metric.
    public enum Kind: String, Sendable, Hashable {
        /// Temperature in °C: daily cycle plus a bounded walk, 0.1 resolution.
        case temperature
        /// Relative humidity in %: against the daily temperature cycle, 0.5 resolution, 0–100.
        case humidity
        /// Air pressure in hPa: slow walk, 0.1 resolution.
        case pressure
        /// CO₂ in ppm: walk, whole numbers, 380–5000.
        case co2
        /// An energy meter in kWh: only grows, 0.001 resolution.
        case counter
        /// Battery in %: slowly drains, 0.01 resolution.
        case battery
        /// A door or motion switch: 0 or 1 (sent as JSON booleans).
        case boolean
        /// Anything else: a walk with 0.01 resolution.
        case generic

        /// The kind a metric name suggests.
        public init(metricName: String) {
            switch metricName.lowercased() {
            case "temp", "temperature", "t": self = .temperature
            case "hum", "humidity", "rh": self = .humidity
            case "pressure", "press", "baro": self = .pressure
            case "co2": self = .co2
            case "energy", "kwh", "counter", "count", "pulses": self = .counter
            case "battery", "bat", "batt": self = .battery
            case "door", "motion", "open", "occupied", "switch": self = .boolean
            default: self = .generic
            }
        }

        /// Steps per unit: values are `Double(steps) / scale`.
        var scale: Double {
            switch self {
            case .temperature, .pressure: return 10
            case .humidity: return 2
            case .co2, .boolean: return 1
            case .counter: return 1000
            case .battery, .generic: return 100
            }
        }
    }

    public let kind: Kind
    private var base: Double
    private var amplitude: Double
    private var phase: Double
    private var walk: Double
    private var steps: Int64

    /// A model with device-specific parameters drawn from `rng`.
    public init(kind: Kind, using rng: inout SeededGenerator) {
        self.kind = kind
        phase = rng.unit() * 2 * Double.pi
        walk = 0
        steps = 0
        switch kind {
        case .temperature:
            base = 16 + rng.unit() * 10
            amplitude = 2 + rng.unit() * 3
        case .humidity:
            base = 35 + rng.unit() * 30
            amplitude = 5 + rng.unit() * 10
        case .pressure:
            base = 995 + rng.unit() * 30
            amplitude = 1
        case .co2:
            base = 420 + rng.unit() * 400
            amplitude = 80
        case .counter:
            base = 50 + rng.unit() * 1500 // watts drawn
            amplitude = 0
            steps = Int64(rng.unit() * 5_000_000) // meter reading in Wh
        case .battery:
            base = 0
            amplitude = 0
            steps = 7000 + Int64(rng.unit() * 3000) // 70.00 % .. 100.00 %
        case .boolean:
            base = 0
            amplitude = 0
            steps = rng.chance(0.3) ? 1 : 0
        case .generic:
            base = rng.unit() * 100
            amplitude = 5
        }
    }

    /// The next value at event time `ts`, `dt` seconds after the previous sample.
    public mutating func next(ts: Int64, dt: Double, using rng: inout SeededGenerator) -> Double {
        let day = sin(2 * Double.pi * Double(ts) / 86_400_000 + phase)
        let scale = kind.scale
        switch kind {
        case .temperature, .humidity, .pressure, .co2, .generic:
            let deviation: Double
            let bound: Double
            switch kind {
            case .temperature: deviation = 0.05; bound = 3
            case .humidity: deviation = 0.3; bound = 10
            case .pressure: deviation = 0.05; bound = 8
            case .co2: deviation = 4; bound = 300
            default: deviation = 0.2; bound = 20
            }
            walk = min(bound, max(-bound, walk + rng.gaussian(deviation: deviation * dt.squareRoot())))
            let sign: Double = kind == .humidity ? -1 : 1
            var x = base + sign * amplitude * day + walk
            switch kind {
            case .humidity: x = min(100, max(0, x))
            case .co2: x = min(5000, max(380, x))
            default: break
            }
            return (x * scale).rounded() / scale
        case .counter:
            base = min(3000, max(0, base + rng.gaussian(deviation: 20 * dt.squareRoot())))
            // The register counts whole Wh; `walk` carries the fraction not yet counted.
            walk += base * dt / 3600
            let whole = walk.rounded(.down)
            steps += Int64(whole)
            walk -= whole
            return Double(steps) / scale
        case .battery:
            if rng.chance(min(1, 0.05 * dt)) { steps = max(0, steps - 1) }
            return Double(steps) / scale
        case .boolean:
            if rng.chance(min(1, 0.02 * dt)) { steps = 1 - steps }
            return Double(steps)
        }
    }
}
