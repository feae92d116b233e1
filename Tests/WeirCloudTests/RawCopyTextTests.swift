import NIOCore
import Testing
@testable import WeirCloud

@Suite struct RawCopyTextTests {
    @Test func rowsAreTabSeparatedDecimalLines() {
        let rows = [
            RawRow(deviceID: 0, seriesID: 9, ts: -1, value: 0.1, applied: true),
            RawRow(deviceID: .max, seriesID: 10, ts: .min, value: -2.5e-300, applied: false),
            RawRow(deviceID: 1_234_567_890_123, seriesID: 99_999, ts: 1_732_539_600_000, value: 20, applied: true),
        ]
        let text = String(buffer: RawCopyText.encode(rows))
        #expect(text == """
            0\t9\t-1\t0.1\tt
            9223372036854775807\t10\t-9223372036854775808\t-2.5e-300\tf
            1234567890123\t99999\t1732539600000\t20.0\tt

            """)
    }

    @Test func everyPowerOfTenHasItsDigits() {
        var value: Int64 = 1
        for _ in 0..<19 {
            for n in [value - 1, value, value + 1, -value] {
                let text = String(buffer: RawCopyText.encode([RawRow(deviceID: n, seriesID: 0, ts: 0, value: 0, applied: true)]))
                #expect(text.split(separator: "\t").first.map(String.init) == String(n))
            }
            value = value > Int64.max / 10 ? value : value * 10
        }
    }
}
