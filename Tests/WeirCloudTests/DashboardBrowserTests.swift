import Foundation
import Testing
import WeirCloud
import WeirCore
import WeirTestSupport
import WeirSupport
import WeirWire

/// The dashboard in a real browser: a real weir-cloud with a planted gap, an edge drop and a
/// late revision, driven by headless Chromium. Screenshots go to
/// `.build/dashboard-screenshots/` (and to `docs/` with `WEIR_UPDATE_SCREENSHOTS=1`).
@Suite struct DashboardBrowserTests {
    static let minute: Int64 = 60_000

    /// POSTs a JSON batch; expects 200.
    static func post(_ cloud: CloudProcess, _ id: String, _ readings: [(String, String, Int64, Double)],
                     drops: [(String, String, Int64, Int64, Int64)] = []) async throws {
        let batch = Batch(gateway: "gw-1", id: id,
                          readings: readings.map { Reading(device: $0.0, metric: $0.1, ts: $0.2, value: $0.3) },
                          drops: drops.map { DropRecord(device: $0.0, metric: $0.1, from: $0.2, to: $0.3, count: $0.4) })
        try await CloudAPI.postAccepted(batch, to: cloud.url, token: nil)
    }

    /// The part of `dom` from the plot of `metric` to the end of its data script.
    static func plotSection(_ dom: String, metric: String) -> String? {
        guard let start = dom.range(of: "data-metric=\"\(metric)\"") else { return nil }
        let rest = dom[start.lowerBound...]
        guard let end = rest.range(of: "</script>") else { return nil }
        return String(rest[..<end.upperBound])
    }

    static func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test(.enabled(if: HeadlessChromium.isAvailable, Comment(rawValue: HeadlessChromium.missing)))
    func fleetAndDevicePagesShowGapsDropsRevisionsAndLiveUpdates() async throws {
        let chromium = try #require(HeadlessChromium.find())
        let dir = try TemporaryDirectory(prefix: "dashboard")
        defer { dir.remove() }
        let cloud = try await CloudProcess.start(in: dir.path)
        do {
            try await exercise(cloud, chromium, dir)
        } catch {
            Issue.record("\(error)\n\(cloud.process.outputTail())")
        }
        await cloud.stop()
    }

    func exercise(_ cloud: CloudProcess, _ chromium: HeadlessChromium, _ dir: TemporaryDirectory) async throws {
        let now = WallClock.nowMs()
        let s = now / Self.minute * Self.minute - 50 * Self.minute
        // dev-a sends temp and hum every 10 s for 50 min; it is silent from minute 10 to 18
        // (a gap, no data); the gateway dropped temp from minute 30 to 34 (drop ledger: 24).
        var readings: [(String, String, Int64, Double)] = []
        for k in 0..<300 {
            if (60..<108).contains(k) { continue }
            let ts = s + Int64(k) * 10_000
            let wave = 20 + 5 * sin(Double(k) / 20)
            readings.append(("dev-a", "hum", ts, 50 - wave))
            if !(180..<204).contains(k) { readings.append(("dev-a", "temp", ts, wave)) }
            readings.append(("dev-b", "temp", ts, wave + 2))
            readings.append(("dev-c", "temp", ts, wave - 2))
        }
        try await Self.post(cloud, "b1", readings, drops: [("dev-a", "temp", s + 1_800_000, s + 2_030_000, 24)])
        // A late reading for minute 5 of temp, long closed: the window is revised.
        try await Self.post(cloud, "b2", [("dev-a", "temp", s + 305_000, 35)])

        // The fleet table lists the devices.
        let fleet = try await chromium.dumpDOM("\(cloud.url)/", in: dir.path)
        for device in ["dev-a", "dev-b", "dev-c"] {
            #expect(fleet.contains("href=\"/devices/\(device)\""), "the fleet table lists \(device)")
        }
        #expect(Self.count("<tr><td><a href=\"/devices/", in: fleet) == 3)
        #expect(fleet.contains("dropped at edge") && fleet.contains("completeness 1 h"))

        // The device page: one plot per metric, one point per window the API answers.
        let windowsURL = "\(cloud.url)/v1/devices/dev-a/windows?size=60s&from=\(s - 10 * Self.minute)&to=\(s + 50 * Self.minute)&metric="
        let temp = try await HTTPGet.json(WindowsAnswer.self, windowsURL + "temp").windows
        let hum = try await HTTPGet.json(WindowsAnswer.self, windowsURL + "hum").windows
        #expect(temp.count == 38 && hum.count == 42, "50 minutes less the 8 silent ones, and the 4 dropped ones of temp")
        let page = try await chromium.dumpDOM("\(cloud.url)/devices/dev-a?range=1h", in: dir.path)
        #expect(Self.count("<svg class=\"plot\"", in: page) == 2)
        for (metric, windows) in [("temp", temp), ("hum", hum)] {
            let section = try #require(Self.plotSection(page, metric: metric), "a plot of \(metric)")
            #expect(section.contains("data-points=\"\(windows.count)\""))
            #expect(Self.count("<circle class=\"w ", in: section) == windows.count, "\(metric): one marker per window")
            #expect(section.contains("data-from=\"\(s + 590_000)\" data-to=\"\(s + 1_080_000)\" data-cause=\"no_data\""),
                    "\(metric): the silence is shaded as a gap without data")
        }
        let tempPlot = try #require(Self.plotSection(page, metric: "temp"))
        #expect(tempPlot.contains("data-from=\"\(s + 1_790_000)\" data-to=\"\(s + 2_040_000)\" data-cause=\"dropped_at_edge\""),
                "the dropped interval is shaded with its cause")
        #expect(tempPlot.contains("gap, dropped at edge (24 readings reported lost)"))
        #expect(tempPlot.contains("<rect class=\"drop\""), "the drop ledger's own interval is shaded")
        #expect(tempPlot.contains("class=\"w closed revised\" data-start=\"\(s + 5 * Self.minute)\""), "the late window is marked revised")
        #expect(Self.count("revised", in: tempPlot) >= 2)
        #expect(page.contains("live: following changes") || page.contains("live: "), "live.js ran")

        // Live: the page follows the changefeed. A reading a second goes into the open
        // window while the browser loads the page; with live_limit=1 the page stops after
        // the first change it gets, and the browser dumps the DOM.
        let open = s + 49 * Self.minute
        let poster = Task {
            for j in 0..<60 {
                try await Task.sleep(for: .milliseconds(700))
                try await Self.post(cloud, "live-\(j)", [("dev-a", "temp", open + 1_000 + Int64(j) * 100, 26 + Double(j) * 0.3)])
            }
        }
        let live = try await chromium.dumpDOM("\(cloud.url)/devices/dev-a?range=1h&live_limit=1", in: dir.path,
                                              virtualTimeBudget: .seconds(2))
        poster.cancel()
        let livePlot = try #require(Self.plotSection(live, metric: "temp"))
        let marker = try #require(livePlot.range(of: "data-start=\"\(open)\" data-mean=\""), "the open window's marker")
        let movedTo = livePlot[marker.upperBound...].prefix { $0 != "\"" }
        #expect(livePlot.contains("class=\"w open updated\" data-start=\"\(open)\""), "live.js updated the open window's marker")
        // The mean the server rendered is in the page's embedded points; the live one moved past it.
        let rendered = livePlot.range(of: "[\(open),").map { livePlot[$0.upperBound...].prefix { $0 != "," } }
        #expect(rendered != nil && String(rendered!) != String(movedTo), "the value moved: rendered \(rendered ?? "?"), now \(movedTo)")
        #expect(live.contains("(stopped after 1)"))

        // Screenshots a person can open.
        let shots = "\(PackagePaths.root)/.build/dashboard-screenshots"
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        try await chromium.screenshot("\(cloud.url)/", to: "\(shots)/dashboard-fleet.png", width: 1400, height: 520, in: dir.path)
        try await chromium.screenshot("\(cloud.url)/devices/dev-a?range=1h", to: "\(shots)/dashboard-device.png", width: 1400, height: 900, in: dir.path)
        if ProcessInfo.processInfo.environment["WEIR_UPDATE_SCREENSHOTS"] == "1" {
            for name in ["dashboard-fleet.png", "dashboard-device.png"] {
                let target = "\(PackagePaths.root)/docs/\(name)"
                try? FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: "\(shots)/\(name)", toPath: target)
            }
        }
    }
}
