import Foundation
import Testing
import WeirCore
import WeirTestSupport
@testable import WeirSim

/// Broker, cloud, edge and simulator as real processes, the link proxy between edge and
/// cloud; faults in the middle of the run; the verifier has the last word.
@Suite(.serialized) struct EndToEndTests {
    /// 30 devices × 3 metrics at 4 samples/s, flaky in every way the simulator knows.
    static func simArguments(seconds: Int, seed: Int) -> [String] {
        ["--devices", "30", "--rate", "4", "--duration", "\(seconds)s", "--metrics", "temp,hum,energy",
         "--dup", "0.05", "--reorder", "0.1", "--offline", "0.003", "--offline-min", "2s", "--offline-max", "5s",
         "--skew", "0.2", "--malformed", "0.01", "--seed", "\(seed)", "--progress", "5s"]
    }

    @Test(.timeLimit(.minutes(2)))
    func outageCloudRestartAndEdgeSigtermLoseNothing() async throws {
        let h = try await SimHarness.start()
        do {
            let clock = ContinuousClock()
            let began = clock.now
            let sim = try h.startSimulator(Self.simArguments(seconds: 24, seed: 5))
            try await clock.sleep(until: began + .seconds(3))
            h.proxy.setLink(up: false, reason: "test outage")           // 3 s … 8 s: uplink down
            try await clock.sleep(until: began + .seconds(8))
            h.proxy.setLink(up: true, reason: "test outage over")
            try await clock.sleep(until: began + .seconds(11))
            try await h.restartCloud()                                    // 11 s: weir-cloud SIGTERM + start
            try await clock.sleep(until: began + .seconds(16))
            try await h.restartEdge(kill: false)                          // 16 s: weir-edge SIGTERM + start
            let exit = await sim.waitForExit(timeout: .seconds(40))
            #expect(exit == .exited(0), "\(h.logs())")

            let verifier = try h.verifier()
            let settled = try await verifier.waitForCloud(timeout: .seconds(30)) { _ in }
            let report = try await verifier.verify()
            let text = report.textLines(sizes: [10_000, 60_000]).joined(separator: "\n")
            print("weir-sim end-to-end (\(#function)):\n\(text)")
            #expect(settled, "\(text)\n\(h.logs())")
            #expect(report.readingsChecked == 30 * 4 * 24 * 3)
            #expect(report.lost == 0, "\(text)")
            #expect(report.doubleCounted == 0, "\(text)")
            #expect(report.mismatchedWindows == 0, "\(text)")
            #expect(report.verified, "\(text)\n\(h.logs())")
            let summary = try TruthStore.open(path: h.truthPath).summary()
            #expect(summary.finished)
            #expect(summary.tally.duplicateMessages > 0 && summary.tally.malformedTotal > 0)
            #expect(report.cloudDuplicates >= summary.tally.duplicateReadings)
        } catch {
            await h.stopAll()
            Issue.record("logs kept in \(h.dir.path)")
            throw error
        }
        await h.stopAll()
        h.removeFolder()
    }

    @Test(.timeLimit(.minutes(2)))
    func edgeSigkillLosesAtMostTheBoundAndCountsNothingTwice() async throws {
        let h = try await SimHarness.start()
        do {
            let clock = ContinuousClock()
            let began = clock.now
            let sim = try h.startSimulator(Self.simArguments(seconds: 14, seed: 6))
            try await clock.sleep(until: began + .seconds(3))
            h.proxy.setLink(up: false, reason: "test outage")           // a backlog in the buffer when the edge dies
            try await clock.sleep(until: began + .seconds(6))
            try await h.restartEdge(kill: true)                           // 6 s: SIGKILL + start
            h.proxy.setLink(up: true, reason: "test outage over")
            let exit = await sim.waitForExit(timeout: .seconds(40))
            #expect(exit == .exited(0), "\(h.logs())")

            // The bound: what arrives within one second (the edge seals every 100 ms; the
            // margin covers the messages libmosquitto had acknowledged but not yet handed over).
            let bound = 30 * 4 * 3
            let verifier = try h.verifier(allowLoss: bound)
            _ = try await verifier.waitForCloud(timeout: .seconds(30)) { _ in }
            let report = try await verifier.verify()
            let text = report.textLines(sizes: [10_000, 60_000]).joined(separator: "\n")
            print("weir-sim end-to-end (\(#function)):\n\(text)")
            #expect(report.readingsChecked == 30 * 4 * 14 * 3)
            #expect(report.doubleCounted == 0, "\(text)")
            #expect(report.mismatchedWindows == 0, "\(text)")
            #expect(report.lost <= bound, "\(text)")
            #expect(report.verified, "\(text)\n\(h.logs())")
        } catch {
            await h.stopAll()
            Issue.record("logs kept in \(h.dir.path)")
            throw error
        }
        await h.stopAll()
        h.removeFolder()
    }
}
