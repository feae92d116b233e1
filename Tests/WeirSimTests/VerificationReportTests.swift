import Testing
import WeirCore
@testable import WeirSim
import WeirWire

/// The comparison at the heart of `verify`, without any process: what counts as loss,
/// double counting, a changed value, and what the drop ledger and --allow-loss explain.
@Suite struct VerificationReportTests {
    static let key = SeriesKey(device: "d1", metric: "temp")
    static let readings: [Reading] = (0..<30).map { i in
        Reading(device: "d1", metric: "temp", ts: 1_764_000_000_000 + Int64(i) * 5_000, value: 20 + Double(i % 7) / 10)
    }

    /// The cloud's view if it applied exactly `readings` (in a shuffled order, as a real
    /// cloud sums in arrival order).
    static func cloudWindows(_ readings: [Reading], size: Int64 = 60_000) -> [WindowsAnswer.Window] {
        var byStart: [Int64: WindowAggregate] = [:]
        for r in readings.shuffled() {
            let start = WindowMath.start(of: r.ts, size: size)
            if byStart[start] == nil { byStart[start] = WindowAggregate(ts: r.ts, value: r.value) } else { byStart[start]!.add(ts: r.ts, value: r.value) }
        }
        return byStart.keys.sorted().map { WindowsAnswer.Window(start: $0, end: $0 + size, aggregate: byStart[$0]!) }
    }

    static func report(truth: [Reading], cloud: [Reading], allowLoss: Int = 0, droppedAtEdge: Int64 = 0) -> VerificationReport {
        var report = VerificationReport(allowedLoss: allowLoss)
        report.readingsChecked = truth.count
        report.compareDevices(truth: ["d1": truth.count], cloud: [CloudDevice(device: "d1", readings: Int64(Set(cloud).count), droppedAtEdge: droppedAtEdge)])
        report.compare(series: key, size: 60_000, expected: ExpectedWindow.windows(of: truth, size: 60_000), observed: cloudWindows(cloud))
        return report
    }

    @Test func identicalDataVerifies() {
        let r = Self.report(truth: Self.readings, cloud: Self.readings)
        #expect(r.verified)
        #expect(r.lost == 0 && r.doubleCounted == 0 && r.mismatchedWindows == 0)
        #expect(r.totalWindowsChecked == 3)
    }

    @Test func aMissingReadingIsLoss() {
        var cloud = Self.readings
        cloud.remove(at: 13)
        let r = Self.report(truth: Self.readings, cloud: cloud)
        #expect(!r.verified)
        #expect(r.lost == 1)
        #expect(r.doubleCounted == 0)
        #expect(r.mismatchedWindows == 0)
        #expect(r.lossyWindows == 1)
        #expect(r.textLines(sizes: [60_000]).last!.hasPrefix("NOT VERIFIED"))
    }

    @Test func aMissingWindowIsLossOfAllItsReadings() {
        let cloud = Self.readings.filter { WindowMath.start(of: $0.ts, size: 60_000) != WindowMath.start(of: Self.readings[0].ts, size: 60_000) }
        let r = Self.report(truth: Self.readings, cloud: cloud)
        #expect(r.lost == Self.readings.count - cloud.count)
        #expect(!r.verified)
    }

    @Test func lossWithinTheAllowanceOrTheDropLedgerVerifies() {
        var cloud = Self.readings
        cloud.removeLast(3)
        #expect(Self.report(truth: Self.readings, cloud: cloud, allowLoss: 3).verified)
        #expect(!Self.report(truth: Self.readings, cloud: cloud, allowLoss: 2).verified)
        #expect(Self.report(truth: Self.readings, cloud: cloud, droppedAtEdge: 3).verified)
        #expect(Self.report(truth: Self.readings, cloud: cloud, allowLoss: 1, droppedAtEdge: 2).verified)
    }

    @Test func aReadingCountedTwiceIsDoubleCounting() {
        let cloud = Self.readings + [Self.readings[4]]
        let r = Self.report(truth: Self.readings, cloud: cloud, allowLoss: 100)
        #expect(!r.verified)
        #expect(r.doubleCounted == 1)
        #expect(r.lost == 0)
    }

    @Test func anUnknownReadingIsCaughtEvenInAWindowOfItsOwn() {
        let stray = Reading(device: "d1", metric: "temp", ts: 1_764_000_600_000, value: 1)
        let r = Self.report(truth: Self.readings, cloud: Self.readings + [stray])
        #expect(!r.verified)
        #expect(r.doubleCounted == 1)
        #expect(r.differences.contains { $0.contains("the truth none") })
    }

    @Test(arguments: [0, 6, 29])
    func aChangedValueIsAMismatch(index: Int) {
        var cloud = Self.readings
        cloud[index].value += 0.1
        let r = Self.report(truth: Self.readings, cloud: cloud)
        #expect(!r.verified)
        #expect(r.mismatchedWindows == 1)
        #expect(r.lost == 0 && r.doubleCounted == 0)
    }

    @Test func aSumOffByFloatingPointNoiseStillMatches() {
        var windows = Self.cloudWindows(Self.readings)
        windows[0].sum *= 1 + 1e-12
        windows[0].mean *= 1 - 1e-12
        var r = VerificationReport()
        r.compare(series: Self.key, size: 60_000, expected: ExpectedWindow.windows(of: Self.readings, size: 60_000), observed: windows)
        #expect(r.verified)
        windows[0].sum *= 1 + 1e-6
        var s = VerificationReport()
        s.compare(series: Self.key, size: 60_000, expected: ExpectedWindow.windows(of: Self.readings, size: 60_000), observed: windows)
        #expect(!s.verified)
    }

    @Test func lossThatCannotBeASubsetIsAMismatch() {
        // One reading gone and another changed: the count says loss, but the new max could
        // not come from any subset of the truth.
        var cloud = Self.readings
        cloud.remove(at: 1)
        cloud[2].value = 99
        let r = Self.report(truth: Self.readings, cloud: cloud, allowLoss: 10)
        #expect(r.lost == 1)
        #expect(r.mismatchedWindows == 1)
        #expect(!r.verified)
    }

    @Test func unknownDevicesAndConflictsFail() {
        var r = VerificationReport()
        var other = CloudDevice(device: "intruder", readings: 5)
        other.conflicts = 0
        r.compareDevices(truth: ["d1": 1], cloud: [CloudDevice(device: "d1", readings: 1), other])
        #expect(r.unexpectedDevices == ["intruder"])
        #expect(!r.verified)
        var s = VerificationReport()
        var conflicted = CloudDevice(device: "d1", readings: 1)
        conflicted.conflicts = 2
        s.compareDevices(truth: ["d1": 1], cloud: [conflicted])
        #expect(s.cloudConflicts == 2)
        #expect(!s.verified)
    }

    @Test func theSummaryLinesCarryTheNumbers() {
        var cloud = Self.readings
        cloud.removeLast()
        let r = Self.report(truth: Self.readings, cloud: cloud)
        var tally = SimulationTally()
        tally.readings = 30
        tally.malformed = ["binary": 2]
        let lines = Set(r.keyValueLines(sizes: [60_000], tally: tally))
        #expect(lines.contains("verified=0"))
        #expect(lines.contains("lost=1"))
        #expect(lines.contains("sent_readings=30"))
        #expect(lines.contains("sent_malformed=2"))
        #expect(lines.contains("sent_malformed_binary=2"))
    }
}
