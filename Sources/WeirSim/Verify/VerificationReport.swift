import WeirCore
import WeirWire

/// What `weir-sim verify` found: the truth's windows against the cloud's, with every
/// difference classified as loss, double counting or a changed value.
///
/// Build it with `compare(series:size:expected:observed:)` for every series and size,
/// `compareDevices(truth:cloud:)` once, then read `verified`.
public struct VerificationReport: Sendable {
    /// Readings in the truth.
    public var readingsChecked = 0
    /// Windows compared, per window size (ms).
    public var windowsChecked: [Int64: Int] = [:]
    /// Readings the cloud is missing, per window size (the same for every size when the
    /// cloud is consistent).
    public var lostBySize: [Int64: Int] = [:]
    /// Readings the cloud counted more often than the truth holds them, per size.
    public var doubleCountedBySize: [Int64: Int] = [:]
    /// Windows whose numbers differ in a way loss does not explain.
    public var mismatchedWindows = 0
    /// Windows that have fewer readings than the truth, consistently with losing some.
    public var lossyWindows = 0
    /// Readings the cloud reports as evicted at the edge (its drop ledger).
    public var droppedAtEdge = 0
    /// Repeats the cloud discarded, and late readings it applied (for information).
    public var cloudDuplicates = 0
    public var cloudLate = 0
    /// Repeats with a different value that the cloud reports: the simulator never sends
    /// one, so any conflict means a value was changed on the way.
    public var cloudConflicts = 0
    /// Distinct readings the cloud stores for the truth's devices.
    public var cloudReadings = 0
    /// Devices the cloud has that the truth does not.
    public var unexpectedDevices: [String] = []
    /// Loss tolerated beyond what the drop ledger explains (`--allow-loss`).
    public var allowedLoss = 0
    /// The first few differences, in words.
    public private(set) var differences: [String] = []
    /// How many differences `differences` keeps.
    public var differenceLimit = 10

    public init(allowedLoss: Int = 0) {
        self.allowedLoss = allowedLoss
    }

    /// Readings lost: the largest count over the window sizes.
    public var lost: Int { lostBySize.values.max() ?? 0 }
    /// Readings double-counted: the largest count over the window sizes.
    public var doubleCounted: Int { doubleCountedBySize.values.max() ?? 0 }
    /// Loss that the edge's drop ledger does not account for.
    public var unexplainedLoss: Int { max(0, lost - droppedAtEdge) }
    /// All windows compared.
    public var totalWindowsChecked: Int { windowsChecked.values.reduce(0, +) }

    /// True when every difference is explained: nothing double-counted, no changed
    /// value, no conflict, no unknown device, and loss within the drop ledger plus `allowedLoss`.
    public var verified: Bool {
        mismatchedWindows == 0 && doubleCounted == 0 && unexpectedDevices.isEmpty && cloudConflicts == 0
            && unexplainedLoss <= allowedLoss
    }

    mutating func note(_ text: String) {
        if differences.count < differenceLimit { differences.append(text) }
    }

    /// Compares one series' windows of one size: the truth's against the cloud's.
    public mutating func compare(series: SeriesKey, size: Int64, expected: [Int64: ExpectedWindow], observed: [WindowsAnswer.Window]) {
        var lost = 0
        var doubled = 0
        var seen = Set<Int64>()
        let label = "\(series.device)/\(series.metric) \(DurationText.formatMilliseconds(size))"
        for window in observed {
            guard seen.insert(window.start).inserted else {
                mismatchedWindows += 1
                doubled += Int(window.count)
                note("\(label) window \(window.start): listed twice by the cloud")
                continue
            }
            guard let want = expected[window.start] else {
                if window.count > 0 {
                    doubled += Int(window.count)
                    mismatchedWindows += 1
                    note("\(label) window \(window.start): the cloud has \(window.count) readings, the truth none")
                }
                continue
            }
            let got = window
            let a = want.aggregate
            if got.count == a.count {
                if let why = Self.difference(want: want, got: got) {
                    mismatchedWindows += 1
                    note("\(label) window \(window.start): \(why)")
                }
            } else if got.count > a.count {
                doubled += Int(got.count - a.count)
                mismatchedWindows += 1
                note("\(label) window \(window.start): count \(got.count), truth \(a.count) (\(got.count - a.count) counted twice or unknown)")
            } else {
                lost += Int(a.count - got.count)
                lossyWindows += 1
                if let why = Self.inconsistentWithLoss(want: want, got: got) {
                    mismatchedWindows += 1
                    note("\(label) window \(window.start): count \(got.count) of \(a.count), and \(why)")
                } else {
                    note("\(label) window \(window.start): count \(got.count) of \(a.count) (\(a.count - got.count) lost)")
                }
            }
        }
        for (start, want) in expected where !seen.contains(start) {
            lost += Int(want.aggregate.count)
            lossyWindows += 1
            note("\(label) window \(start): missing in the cloud (\(want.aggregate.count) readings lost)")
        }
        windowsChecked[size, default: 0] += max(expected.count, seen.count)
        lostBySize[size, default: 0] += lost
        doubleCountedBySize[size, default: 0] += doubled
    }

    /// Compares the device list: the truth's readings per device against the cloud's, and
    /// collects what the cloud says about duplicates, late readings and edge drops.
    public mutating func compareDevices(truth: [String: Int], cloud: [CloudDevice]) {
        for device in cloud {
            if truth[device.device] == nil {
                if device.readings > 0 {
                    unexpectedDevices.append(device.device)
                    note("device \(device.device): \(device.readings) readings in the cloud, none in the truth")
                }
            } else {
                cloudReadings += Int(device.readings)
            }
            cloudDuplicates += Int(device.duplicates ?? 0)
            cloudLate += Int(device.late ?? 0)
            if let conflicts = device.conflicts, conflicts > 0 {
                cloudConflicts += Int(conflicts)
                note("device \(device.device): the cloud counted \(conflicts) conflicting values")
            }
            droppedAtEdge += Int(device.dropped_at_edge ?? 0)
        }
    }

    /// Why two windows with the same count differ, or `nil` when they agree.
    static func difference(want: ExpectedWindow, got: WindowsAnswer.Window) -> String? {
        let a = want.aggregate
        if got.min != a.min { return "min \(got.min), truth \(a.min)" }
        if got.max != a.max { return "max \(got.max), truth \(a.max)" }
        if got.first.ts != a.firstTs || got.first.value != a.firstValue {
            return "first (\(got.first.ts), \(got.first.value)), truth (\(a.firstTs), \(a.firstValue))"
        }
        if got.last.ts != a.lastTs || got.last.value != a.lastValue {
            return "last (\(got.last.ts), \(got.last.value)), truth (\(a.lastTs), \(a.lastValue))"
        }
        if !close(got.sum, a.sum, magnitude: want.magnitude) { return "sum \(got.sum), truth \(a.sum)" }
        if !close(got.mean, a.mean, magnitude: want.magnitude / Double(a.count)) { return "mean \(got.mean), truth \(a.mean)" }
        return nil
    }

    /// Why a window with fewer readings than the truth cannot be the truth minus some
    /// readings, or `nil` when it can: its min and max lie inside the truth's, its first and
    /// last readings inside the truth's span, and equal when at the same time.
    static func inconsistentWithLoss(want: ExpectedWindow, got: WindowsAnswer.Window) -> String? {
        let a = want.aggregate
        guard got.count > 0 else { return nil }
        if got.min < a.min { return "min \(got.min) is below the truth's \(a.min)" }
        if got.max > a.max { return "max \(got.max) is above the truth's \(a.max)" }
        if got.first.ts < a.firstTs { return "first at \(got.first.ts) is before the truth's \(a.firstTs)" }
        if got.last.ts > a.lastTs { return "last at \(got.last.ts) is after the truth's \(a.lastTs)" }
        if got.first.ts == a.firstTs, got.first.value != a.firstValue { return "first value \(got.first.value), truth \(a.firstValue)" }
        if got.last.ts == a.lastTs, got.last.value != a.lastValue { return "last value \(got.last.value), truth \(a.lastValue)" }
        return nil
    }

    /// Equal to a relative 1e-9 of the magnitude of what was summed.
    static func close(_ x: Double, _ y: Double, magnitude: Double) -> Bool {
        if x == y { return true }
        guard x.isFinite, y.isFinite else { return false }
        let scale = Swift.max(abs(x), abs(y), magnitude, Double.leastNormalMagnitude)
        return abs(x - y) <= 1e-9 * scale
    }
}
