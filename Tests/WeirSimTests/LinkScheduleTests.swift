import Testing
import WeirCore
@testable import WeirSim

@Suite struct LinkScheduleTests {
    @Test func aRepeatingScheduleCycles() throws {
        let s = try LinkSchedule.parse("up 20s, down 10s, ...")
        #expect(s.repeats)
        #expect(s.state(at: .zero))
        #expect(s.state(at: .seconds(19)))
        #expect(!s.state(at: .seconds(20)))
        #expect(!s.state(at: .milliseconds(29_999)))
        #expect(s.state(at: .seconds(30)))
        #expect(!s.state(at: .seconds(55)))
        #expect(s.description == "up 20s, down 10s, ...")
    }

    @Test func withoutDotsTheLastStateStays() throws {
        let s = try LinkSchedule.parse("up 5s, down 10s")
        #expect(!s.state(at: .seconds(7)))
        #expect(!s.state(at: .seconds(3600)))
        let t = try LinkSchedule.parse("down 1s, up")
        #expect(!t.state(at: .milliseconds(500)))
        #expect(t.state(at: .seconds(100)))
        #expect(Array(t.timeline).count == 2)
    }

    @Test(arguments: [
        ("", "empty"),
        ("...", "needs steps"),
        ("sideways 5s", "up or down"),
        ("up, down 5s", "needs a duration"),
        ("up 5s, down, ...", "needs a duration"),
        ("up 5 parsecs", "extra words"),
        ("up 5x", "not a duration"),
        ("up 0s, down", "0s"),
    ])
    func badSchedulesNameTheProblem(text: String, expected: String) {
        do {
            _ = try LinkSchedule.parse(text)
            Issue.record("'\(text)' parsed")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
            #expect(error.message.contains("--schedule"))
        }
    }
}
