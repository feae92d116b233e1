import Testing
import WeirCore

@Suite struct ReadingTests {
    @Test(arguments: ["d1", "gw-1:sensor/7", "A.b_c-d", String(repeating: "x", count: 128)])
    func validNamesPass(name: String) throws {
        try Reading(device: name, metric: name, ts: 0, value: 1).validate()
    }

    @Test func badNamesNameTheFieldAndTheProblem() {
        #expect(Reading(device: "", metric: "t", ts: 0, value: 1).problem == .emptyName(field: "device"))
        #expect(Reading(device: "d", metric: String(repeating: "m", count: 129), ts: 0, value: 1).problem
            == .nameTooLong(field: "metric", bytes: 129))
        #expect(Reading(device: "d 1", metric: "t", ts: 0, value: 1).problem
            == .badNameCharacter(field: "device", character: " "))
        let accented = Reading(device: "d", metric: "température", ts: 0, value: 1).problem
        #expect(accented == .badNameCharacter(field: "metric", character: "é"))
        #expect(accented?.description == "metric contains 'U+E9' (only [A-Za-z0-9_.:/-] allowed)")
        // 43 three-byte characters are 129 bytes: the byte length, not the character count, is checked.
        let longUTF8 = String(repeating: "€", count: 43)
        #expect(Reading(device: longUTF8, metric: "t", ts: 0, value: 1).problem != nil)
    }

    @Test(arguments: [Double.nan, .infinity, -.infinity])
    func nonFiniteValuesAreBad(value: Double) {
        #expect(Reading(device: "d", metric: "t", ts: 0, value: value).problem != nil)
    }

    @Test func finiteExtremesAreGood() {
        for v in [0.0, -0.0, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude] {
            #expect(Reading(device: "d", metric: "t", ts: .min, value: v).problem == nil)
        }
    }
}
