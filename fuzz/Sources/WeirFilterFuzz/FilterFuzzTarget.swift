import CFuzzDriver
import WeirCore

/// The executable's entry point: hands control to libFuzzer's driver with
/// `fuzzFilterChain` as the function under test.
@_cdecl("weir_filter_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data, size > 0 else { return 0 }
        return fuzzFilterChain(UnsafeBufferPointer(start: data, count: size))
    }
}

/// One fuzzer input drives a `FilterChain` whose state lives in manually managed buffers
/// (built with AddressSanitizer, so a stray index is reported, not silently tolerated).
///
/// The first byte picks which of the rules below apply; then every 4 bytes are one
/// reading: device (of up to 40, with small state caps so eviction and rebuilds happen
/// often), metric (of up to 24, past the per-device linear-scan limit), a signed time
/// step (back and forth, repeats) and a value (including out-of-range ones). Readings
/// go one at a time and in batches mixing devices (as the edge's hand-overs do) on two
/// chains that must agree, with flushes in between; every emitted aggregate must lie
/// within the values seen.
public func fuzzFilterChain(_ input: UnsafeBufferPointer<UInt8>) -> CInt {
    let all: [FilterRule] = [
        FilterRule(match: "*/t*", range: RangeSpec(min: -50, max: 150)),
        FilterRule(match: "*/*", dedupWindowMs: 5_000),
        FilterRule(match: "d1*/*", deadband: DeadbandSpec(abs: 0.5, heartbeatMs: 3_000)),
        FilterRule(match: "*/h*", deadband: DeadbandSpec(percent: 2)),
        FilterRule(match: "*/*", rateLimitPerSecond: 3),
        FilterRule(match: "d2?/*", downsample: DownsampleSpec(bucketMs: 2_000, aggregate: .mean)),
        FilterRule(match: "*/m*", downsample: DownsampleSpec(bucketMs: 1_000, aggregate: .max)),
        FilterRule(match: "*/*", dedupWindowMs: 60_000),
    ]
    let mask = input[0]
    let rules = all.indices.filter { mask & (1 << UInt8($0)) != 0 }.map { all[$0] }
    var single = FilterChain(rules: rules)
    var batched = FilterChain(rules: rules)
    for c in [WritableKeyPath<FilterChain, Int>](arrayLiteral: \.maxDevices, \.maxMetricsPerDevice, \.maxDedupEntriesPerSeries) {
        let cap = c == \FilterChain.maxDevices ? 8 : c == \FilterChain.maxMetricsPerDevice ? 20 : 16
        single[keyPath: c] = cap
        batched[keyPath: c] = cap
    }
    let devices = (0..<40).map { "d\($0)" }
    let metrics = (0..<24).map { ["t", "h", "m", "x"][$0 % 4] + "\($0)" }
    var ts: Int64 = 1_732_540_000_000
    var payload: [Reading] = []
    var results = FilterResults()
    var lowest = Double.infinity, highest = -Double.infinity
    var emittedSingle: [Reading] = [], emittedBatched: [Reading] = []

    func flushPayload() {
        guard !payload.isEmpty else { return }
        let one = payload.map { single.apply($0) }
        batched.apply(payload, into: &results)
        let many = results.verdicts(for: payload)
        guard one == many else {
            fatalError("batch and one-at-a-time verdicts differ: \(one) vs \(many)")
        }
        payload.removeAll(keepingCapacity: true)
        emittedSingle += single.flushDue(now: ts)
        emittedBatched += batched.flushDue(now: ts)
    }

    var i = 1
    while i + 4 <= input.count {
        let (a, b, c, d) = (input[i], input[i + 1], input[i + 2], input[i + 3])
        i += 4
        let device = devices[Int(a) % devices.count]
        // Batches of any length and any mix of devices, as the edge's hand-overs are.
        if a & 0x80 != 0 { flushPayload() }
        ts &+= Int64(Int8(bitPattern: c)) * 250
        let value = b & 0x80 != 0 ? Double(Int8(bitPattern: d)) * 3 : Double(Int8(bitPattern: d)) / 8
        lowest = min(lowest, value)
        highest = max(highest, value)
        payload.append(Reading(device: device, metric: metrics[Int(b) % metrics.count], ts: ts, value: value))
    }
    flushPayload()
    emittedSingle += single.flushAll()
    emittedBatched += batched.flushAll()
    guard emittedSingle == emittedBatched else { fatalError("the two chains emitted different aggregates") }
    for r in emittedSingle where !(r.value >= lowest && r.value <= highest) {
        fatalError("aggregate \(r.value) outside the values seen (\(lowest)...\(highest))")
    }
    return 0
}
