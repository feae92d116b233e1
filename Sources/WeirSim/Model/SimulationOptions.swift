import Foundation
import WeirCore

/// What a simulation run does: how many devices, how often they sample, which metrics,
/// and how flaky they are. Every knob is independent; each draws from its own random
/// stream, so turning one up leaves the others' decisions (and all sensor values) alone.
///
/// ```swift
/// var options = SimulationOptions(devices: 200, rate: 2, duration: .seconds(60))
/// options.duplicates = 0.05
/// options.offline = 0.002
/// let simulation = try Simulation(options: options)
/// ```
public struct SimulationOptions: Sendable, Hashable {
    /// Number of simulated devices, named `d0000`, `d0001`, ...
    public var devices: Int
    /// Samples per device per second; each sample carries one reading of every metric.
    public var rate: Double
    /// How long devices sample; the run then flushes everything devices still hold.
    public var duration: Duration
    /// Metric names. Known names get a realistic model (`temp`, `hum`, `pressure`, `co2`,
    /// `energy`, `battery`, `door`, ...); any other name a generic random walk.
    public var metrics: [String]
    /// The seed: same seed and same `start` give the same messages and the same truth.
    public var seed: UInt64
    /// Event time of the first sample, epoch ms (devices with skewed clocks add their skew).
    public var start: Int64
    /// Topic template; `{device}` is replaced by the device name.
    public var topic: String
    /// Device name prefix.
    public var devicePrefix: String

    /// Probability, per sample, that a valid message is published again (a duplicate).
    public var duplicates: Double
    /// Probability, per sample, that a message is held back and sent after the device's
    /// next one to three samples (local reordering).
    public var reorder: Double
    /// Probability, per device and sample, that the device goes offline: it keeps sampling,
    /// holds its readings, and when it comes back sends its newest sample first and then
    /// bursts the backlog, shuffled, in arrays of up to five samples.
    public var offline: Double
    /// Length of an offline episode, uniformly drawn from this range.
    public var offlineLength: ClosedRange<Duration>
    /// Fraction of devices whose clock is off by a constant skew in `skewRange`.
    public var skew: Double
    /// Clock offsets for skewed devices, ms. The default, −4 min to +2 min, stays inside
    /// the edge's default `max_clock_skew` (5 min ahead) with margin for delivery delays,
    /// and after 2000-01-01, so skewed readings are still valid and verifiable.
    public var skewRange: ClosedRange<Int64>
    /// Probability, per device and sample, that the device also publishes a malformed payload.
    public var malformed: Double
    /// The malformed kinds to draw from (all by default).
    public var malformedKinds: [MalformedKind]

    public init(
        devices: Int = 10,
        rate: Double = 1,
        duration: Duration = .seconds(60),
        metrics: [String] = ["temp", "hum"],
        seed: UInt64 = 42,
        start: Int64 = 1_764_000_000_000,
        topic: String = "devices/{device}/telemetry",
        devicePrefix: String = "d",
        duplicates: Double = 0,
        reorder: Double = 0,
        offline: Double = 0,
        offlineLength: ClosedRange<Duration> = .seconds(5)...(.seconds(20)),
        skew: Double = 0,
        skewRange: ClosedRange<Int64> = -240_000...120_000,
        malformed: Double = 0,
        malformedKinds: [MalformedKind] = MalformedKind.allCases
    ) {
        self.devices = devices
        self.rate = rate
        self.duration = duration
        self.metrics = metrics
        self.seed = seed
        self.start = start
        self.topic = topic
        self.devicePrefix = devicePrefix
        self.duplicates = duplicates
        self.reorder = reorder
        self.offline = offline
        self.offlineLength = offlineLength
        self.skew = skew
        self.skewRange = skewRange
        self.malformed = malformed
        self.malformedKinds = malformedKinds
    }

    /// The earliest event time a valid reading may carry: 2000-01-01, where the edge
    /// starts calling timestamps a reset clock.
    public static let earliestValidTimestamp: Int64 = 946_684_800_000

    /// Checks every option; the error names the option and what is allowed.
    public func validate() throws(WeirError) {
        func bad(_ message: String) -> WeirError { WeirError(.badArgument, message) }
        guard devices >= 1, devices <= 1_000_000 else { throw bad("--devices is \(devices) (1 to 1000000 expected)") }
        guard rate.isFinite, rate > 0, rate <= 100 else {
            throw bad("--rate is \(rate) (samples per device per second, more than 0 and at most 100)")
        }
        guard duration > .zero else { throw bad("--duration must be longer than 0s") }
        guard !metrics.isEmpty else { throw bad("--metrics is empty (name at least one, e.g. temp,hum)") }
        var seen = Set<String>()
        for metric in metrics {
            do {
                try Reading.validateName(metric, field: "metric '\(metric.prefix(40))'")
            } catch {
                throw bad("--metrics: \(error)")
            }
            guard metric != "ts" else { throw bad("--metrics: 'ts' is the timestamp field, not a metric") }
            guard seen.insert(metric).inserted else { throw bad("--metrics names '\(metric)' twice") }
        }
        guard topic.contains("{device}") else { throw bad("--topic '\(topic)' has no {device} level") }
        for (name, p) in [("--dup", duplicates), ("--reorder", reorder), ("--offline", offline), ("--skew", skew), ("--malformed", malformed)] {
            guard p.isFinite, p >= 0, p <= 1 else { throw bad("\(name) is \(p) (a probability from 0 to 1 expected)") }
        }
        guard offlineLength.lowerBound > .zero else { throw bad("offline episodes must last longer than 0s") }
        guard skewRange.upperBound <= 240_000 else {
            throw bad("clock skew up to \(skewRange.upperBound) ms ahead would cross the edge's default max_clock_skew (5 min); keep it at most 4 min")
        }
        guard start + skewRange.lowerBound >= SimulationOptions.earliestValidTimestamp else {
            throw bad("--start \(start) with skew \(skewRange.lowerBound) ms puts readings before 2000-01-01, which the edge rejects")
        }
        guard !malformedKinds.isEmpty || malformed == 0 else { throw bad("--malformed is set but no malformed kinds are enabled") }
    }

    /// The device name for index `index`: prefix and a zero-padded number.
    public func deviceName(_ index: Int) -> String {
        let width = max(4, String(devices - 1).count)
        let digits = String(index)
        return devicePrefix + String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// The topic a device publishes on.
    public func topic(for device: String) -> String {
        topic.replacingOccurrences(of: "{device}", with: device)
    }

    /// Sampling period in milliseconds.
    public var periodMs: Double { 1000 / rate }

    /// Samples per device over the whole duration.
    public var ticks: Int {
        let ms = Double(duration.milliseconds)
        return max(1, Int((ms / periodMs).rounded(.up)))
    }
}
