import Foundation
import GRDB
import Testing
import WeirCore
import WeirTestSupport
@testable import WeirSim

@Suite struct TruthStoreTests {
    /// Writes a whole simulation's truth the way `run` does (without a broker).
    static func writeTruth(_ options: SimulationOptions, to path: String) throws -> SimulationTally {
        var simulation = try Simulation(options: options)
        let truth = try TruthStore.create(path: path, replacing: false)
        try truth.start(options, broker: "none")
        let messages = simulation.allMessages()
        for chunk in stride(from: 0, to: messages.count, by: 500) {
            let part = messages[chunk..<min(chunk + 500, messages.count)]
            try truth.record(part.filter { $0.kind == .readings }.flatMap(\.readings), tally: simulation.tally)
        }
        try truth.update(simulation.tally, finished: true)
        return simulation.tally
    }

    static func dump(_ path: String) throws -> [String] {
        try TruthStore.open(path: path).readings().map { "\($0.device) \($0.metric) \($0.ts) \($0.value.bitPattern)" }
    }

    @Test func sameSeedGivesTheSameTruthFile() throws {
        let dir = try TemporaryDirectory(prefix: "truth")
        defer { dir.remove() }
        let options = SimulationTests.flaky(seed: 11, devices: 10, duration: .seconds(20))
        let tallyA = try Self.writeTruth(options, to: "\(dir.path)/a.db")
        let tallyB = try Self.writeTruth(options, to: "\(dir.path)/b.db")
        var other = options
        other.seed = 12
        _ = try Self.writeTruth(other, to: "\(dir.path)/c.db")

        let a = try Self.dump("\(dir.path)/a.db")
        #expect(a.count == 10 * 40 * 4)
        #expect(a == (try Self.dump("\(dir.path)/b.db")))
        #expect(a != (try Self.dump("\(dir.path)/c.db")))
        #expect(tallyA == tallyB)

        let summary = try TruthStore.open(path: "\(dir.path)/a.db").summary()
        #expect(summary.finished)
        #expect(summary.readings == a.count)
        #expect(summary.tally == tallyA)
        #expect(summary.parameters["seed"] == "11")
        #expect(try TruthStore.open(path: "\(dir.path)/a.db").deviceCounts()["d0003"] == 40 * 4)
    }

    @Test func anExistingTruthIsNotOverwrittenByAccident() throws {
        let dir = try TemporaryDirectory(prefix: "truth")
        defer { dir.remove() }
        let path = "\(dir.path)/t.db"
        let first = try TruthStore.create(path: path, replacing: false)
        try first.record([Reading(device: "d", metric: "m", ts: 1_000_000_000_000, value: 1)])
        #expect(throws: WeirError.self) { try TruthStore.create(path: path, replacing: false) }
        let second = try TruthStore.create(path: path, replacing: true)
        #expect(try second.readingCount() == 0)
    }

    @Test func aForeignOrMissingFileIsAClearError() throws {
        let dir = try TemporaryDirectory(prefix: "truth")
        defer { dir.remove() }
        do {
            _ = try TruthStore.open(path: "\(dir.path)/missing.db")
            Issue.record("opened a missing file")
        } catch {
            #expect(error.message.contains("does not exist"))
        }
        let foreign = "\(dir.path)/foreign.db"
        let queue = try DatabaseQueue(path: foreign)
        try queue.write { try $0.execute(sql: "CREATE TABLE readings (x INTEGER)") }
        try queue.close()
        do {
            _ = try TruthStore.open(path: foreign)
            Issue.record("opened a foreign file")
        } catch {
            #expect(error.message.contains("not a weir-sim truth file"))
        }
        let garbage = "\(dir.path)/garbage.db"
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: garbage))
        #expect(throws: WeirError.self) { try TruthStore.open(path: garbage) }
    }

    @Test func aRepeatedReadingIsRecordedOnce() throws {
        let dir = try TemporaryDirectory(prefix: "truth")
        defer { dir.remove() }
        let truth = try TruthStore.create(path: "\(dir.path)/t.db", replacing: false)
        let r = Reading(device: "d", metric: "m", ts: 1_000_000_000_000, value: 1)
        try truth.record([r, r])
        try truth.record([r])
        #expect(try truth.readings() == [r])
    }
}
