import Foundation
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore
import WeirWire

/// The hand-written JSON of the read API parses as JSON and round-trips every value.
@Suite struct JSONWriterTests {
    @Test(arguments: [Int64.min, -1, 0, 7, 10, 1_732_539_600_000, Int64.max])
    func integersRoundTrip(_ value: Int64) throws {
        var json = JSONWriter()
        json.raw("[")
        json.int(value)
        json.raw("]")
        let parsed = try JSONDecoder().decode([Int64].self, from: Data(json.buffer.readableBytesView))
        #expect(parsed == [value])
    }

    @Test(arguments: [0.0, -0.5, 21.5, 1e-5, 5e20, 0.1 + 0.2, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude])
    func doublesRoundTrip(_ value: Double) throws {
        var json = JSONWriter()
        json.raw("[")
        json.double(value)
        json.raw("]")
        let parsed = try JSONDecoder().decode([Double].self, from: Data(json.buffer.readableBytesView))
        #expect(parsed == [value])
    }

    @Test func nonFiniteAndStrings() throws {
        var json = JSONWriter()
        json.raw("[")
        json.double(Double.infinity); json.raw(",")
        json.double(-Double.infinity); json.raw(",")
        json.double(Double.nan); json.raw(",")
        json.string("a\"b\\c\nd\u{1}é/x")
        json.raw("]")
        let parsed = try JSONSerialization.jsonObject(with: Data(json.buffer.readableBytesView)) as? [String]
        #expect(parsed == ["Infinity", "-Infinity", "NaN", "a\"b\\c\nd\u{1}é/x"])
    }

    @Test func windowsAnswerDecodes() throws {
        let record = WindowRecord(sizeMs: 60_000, start: t0, aggregate: WindowAggregate(ts: t0 + 5, value: 21.5), revision: 2, late: 1)
        var json = JSONWriter()
        WindowsAnswer.write(device: "d\"1", metric: "temp", sizeMs: 60_000, windows: [record, record], watermark: t0 + 60_000, into: &json)
        let answer = try JSONDecoder().decode(WindowsAnswer.self, from: Data(json.buffer.readableBytesView))
        #expect(answer.device == "d\"1" && answer.sizeMs == 60_000 && answer.windows.count == 2)
        let w = answer.windows[0]
        #expect(w.start == t0 && w.end == t0 + 60_000 && w.count == 1 && w.mean == 21.5 && w.first.ts == t0 + 5)
        #expect(w.state == .closed && w.revision == 2 && w.late == 1)
    }
}
