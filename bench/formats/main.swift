// weir-bench-formats: payload decoding alone, and decoding plus ten filter rules, for each
// payload format, on one core. Targets (issue 6): parse + filters ≥ 500k readings/s for
// every format, and the filters cost ≤ 20% over parsing alone.
//
//     swift build -c release --product weir-bench-formats && .build/release/weir-bench-formats
//
// Both measured paths have the edge's shape (`IngestPipeline`): a hand-over of 64
// messages is decoded into one buffer, which then goes through the filters in one call.
// The filters start each round warmed by 64 earlier messages per device (untimed), as a
// running gateway's are: every series known, every dedup window at its size.
// `WEIR_BENCH_HANDOVER=1` times one message at a time, `WEIR_BENCH_WARMUP=0` a cold chain.
//
// Each figure is the best of several rounds, parse-only and parse+filters interleaved, so
// the ratio compares runs made under the same machine load. Where a process's code, stack
// and heap land (ASLR, the path it runs from) moves the in-line figure by a few points on
// its own, so the benchmark runs in 5 processes (`WEIR_BENCH_PROCESSES`), one after
// another, prints each one's figures and judges the targets on the median process.
import WeirCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}

/// `WEIR_BENCH_DEVICES` changes the number of devices (state that fits in cache or not);
/// the total number of messages stays the same.
let devices = max(1, Int(getenvString("WEIR_BENCH_DEVICES") ?? "") ?? 1_000)
let messagesPerDevice = 300_000 / devices
/// Messages per device that go through the filters untimed before the timed ones (with
/// earlier times), so the chain is in the steady state of a running gateway: every series
/// known, every dedup window at its full size. `WEIR_BENCH_WARMUP=0` times a cold chain.
let warmupPerDevice = max(0, Int(getenvString("WEIR_BENCH_WARMUP") ?? "") ?? 64)
let rounds = max(1, Int(getenvString("WEIR_BENCH_ROUNDS") ?? "") ?? 7)
let startTs: Int64 = 1_732_540_000_123

/// Deterministic noise for the values.
struct Walk {
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    mutating func next() -> Double {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Double(state % 2_001) / 1_000 - 1 // -1 ... 1
    }
}

struct Message {
    let payload: [UInt8]
    let context: PayloadContext
}

func fixed(_ v: Double, _ places: Int) -> String {
    // Formats without Foundation: round to `places` decimals.
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let n = Int64((v * scale).rounded())
    let sign = n < 0 ? "-" : ""
    let a = n.magnitude
    let whole = a / UInt64(scale)
    var frac = String(a % UInt64(scale))
    while frac.count < places { frac = "0" + frac }
    return places == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(frac)"
}

func makeMessages(_ format: PayloadFormat) -> [Message] {
    var walk = Walk()
    var out: [Message] = []
    out.reserveCapacity(devices * (warmupPerDevice + messagesPerDevice))
    var temps = [Double](repeating: 21, count: devices)
    var hums = [Double](repeating: 45, count: devices)
    var pressures = [Double](repeating: 1013, count: devices)
    for m in -warmupPerDevice..<messagesPerDevice {
        for d in 0..<devices {
            // Mean-reverting walks: values wander but stay plausible (in range).
            temps[d] += walk.next() * 0.1 - (temps[d] - 21) * 0.01
            hums[d] += walk.next() * 0.5 - (hums[d] - 45) * 0.01
            pressures[d] += walk.next() * 0.2 - (pressures[d] - 1013) * 0.01
            let ts = startTs + Int64(m) * 1_000 + Int64(d)
            let device = "dev-\(d)"
            let text: String
            switch format {
            case .json:
                text = #"{"ts": \#(ts), "temp": \#(fixed(temps[d], 2)), "hum": \#(fixed(hums[d], 1)), "pressure": \#(fixed(pressures[d], 1))}"#
            case .senml:
                let bt = "\(ts / 1000).\(fixed(Double(ts % 1000), 0).leftPadded(3))"
                text = #"[{"bn":"\#(device):","bt":\#(bt),"n":"temp","u":"Cel","v":\#(fixed(temps[d], 2))},{"n":"hum","u":"%RH","v":\#(fixed(hums[d], 1))},{"n":"pressure","u":"hPa","v":\#(fixed(pressures[d], 1))}]"#
            case .line:
                text = "env,device=\(device),site=plant-1 temp=\(fixed(temps[d], 2)),hum=\(fixed(hums[d], 1)),pressure=\(fixed(pressures[d], 1)) \(ts)000000"
            }
            out.append(Message(payload: Array(text.utf8), context: PayloadContext(topic: "devices/\(device)/telemetry", device: device, receivedAt: ts + 50)))
        }
    }
    return out
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

let rules: [FilterRule] = [
    FilterRule(match: "*/*temp", range: RangeSpec(min: -50, max: 150)),
    FilterRule(match: "*/*hum", range: RangeSpec(min: 0, max: 100)),
    FilterRule(match: "*/*", dedupWindowMs: 60_000),
    FilterRule(match: "*/*temp", deadband: DeadbandSpec(abs: 0.05, heartbeatMs: 60_000)),
    FilterRule(match: "*/*hum", deadband: DeadbandSpec(percent: 0.5, heartbeatMs: 300_000)),
    FilterRule(match: "*/*", rateLimitPerSecond: 100),
    FilterRule(match: "dev-1??/*", range: RangeSpec(min: -1_000)),
    FilterRule(match: "*/voltage", range: RangeSpec(min: 0, max: 400)),
    FilterRule(match: "site-*/*", dedupWindowMs: 10_000),
    FilterRule(match: "*/*pressure", downsample: DownsampleSpec(bucketMs: 10_000, aggregate: .mean)),
]
for rule in rules {
    do { try rule.validate() } catch { fatalError("bench rule: \(error)") }
}

struct Counts {
    var readings = 0
    var passed = 0
    var held = 0
    var dropped = 0
    var deadLetters = 0
    var emitted = 0
    var checksum = 0.0

    /// Counts a batch's outcomes; the checksum adds the values of the readings kept.
    mutating func count(_ results: FilterResults, of readings: [Reading]) {
        for (i, outcome) in results.outcomes.enumerated() {
            switch outcome {
            case .pass: passed += 1; checksum += readings[i].value
            case .held: held += 1
            case .dropped: dropped += 1
            case .deadLetter: deadLetters += 1
            }
        }
    }
}

/// Messages handed over at once, as the edge's reader takes them from the broker's queue
/// (`IngestService.batchSize`): their payloads are decoded into one buffer, which then goes
/// through the filters in one call.
let handOver = max(1, Int(getenvString("WEIR_BENCH_HANDOVER") ?? "") ?? 64)

/// Parsing alone, in the edge's shape: a hand-over's payloads decoded into one reused buffer.
func parseOnly(_ decoder: any PayloadDecoder, _ messages: ArraySlice<Message>) -> Counts {
    var c = Counts()
    var buffer: [Reading] = []
    var start = messages.startIndex
    while start < messages.endIndex {
        let end = min(start + handOver, messages.endIndex)
        buffer.removeAll(keepingCapacity: true)
        for m in messages[start..<end] {
            _ = decoder.decode(m.payload, context: m.context, appendingTo: &buffer)
        }
        c.readings += buffer.count
        for r in buffer { c.checksum += r.value }
        start = end
    }
    return c
}

/// Parsing and filtering as the edge does it: a hand-over's payloads decoded into one
/// buffer, which goes through the filters in one call.
struct ParseAndFilter {
    let decoder: any PayloadDecoder
    var chain = FilterChain(rules: rules)
    var results = FilterResults()
    var buffer: [Reading] = []
    var lastFlush: Int64 = 0
    var c = Counts()

    init(decoder: any PayloadDecoder) {
        self.decoder = decoder
    }

    mutating func feed(_ messages: ArraySlice<Message>) {
        var start = messages.startIndex
        while start < messages.endIndex {
            let end = min(start + handOver, messages.endIndex)
            buffer.removeAll(keepingCapacity: true)
            for m in messages[start..<end] {
                _ = decoder.decode(m.payload, context: m.context, appendingTo: &buffer)
            }
            c.readings += buffer.count
            chain.apply(buffer, into: &results)
            c.count(results, of: buffer)
            // The edge flushes on its flush interval (100 ms), not per hand-over.
            let now = messages[end - 1].context.receivedAt
            if now - lastFlush >= 100 {
                lastFlush = now
                for r in chain.flushDue(now: now) { c.emitted += 1; c.checksum += r.value }
            }
            start = end
        }
    }
}

/// The filters alone, over the same hand-overs decoded beforehand.
struct FilterOnly {
    var chain = FilterChain(rules: rules)
    var results = FilterResults()
    var lastFlush: Int64 = 0
    var c = Counts()

    /// `decoded[i]`: the readings of a hand-over whose last message is `lastMessages[i]`.
    mutating func feed(_ decoded: ArraySlice<[Reading]>, lastMessages: ArraySlice<Message>) {
        for i in decoded.indices {
            let readings = decoded[i]
            c.readings += readings.count
            chain.apply(readings, into: &results)
            c.count(results, of: readings)
            let now = lastMessages[i].context.receivedAt
            if now - lastFlush >= 100 {
                lastFlush = now
                for r in chain.flushDue(now: now) { c.emitted += 1; c.checksum += r.value }
            }
        }
    }
}

/// The readings of each hand-over of `messages`, and the last message of each.
func handOvers(_ decoder: any PayloadDecoder, _ messages: ArraySlice<Message>) -> (readings: [[Reading]], last: [Message]) {
    var readings: [[Reading]] = []
    var last: [Message] = []
    var start = messages.startIndex
    while start < messages.endIndex {
        let end = min(start + handOver, messages.endIndex)
        var buffer: [Reading] = []
        for m in messages[start..<end] { _ = decoder.decode(m.payload, context: m.context, appendingTo: &buffer) }
        readings.append(buffer)
        last.append(messages[end - 1])
        start = end
    }
    return (readings, last)
}

func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) / 1e18
}

let clock = ContinuousClock()

/// One process's figures for one format (readings per second).
struct Figures {
    var format: String
    var parse: Double
    var both: Double
    var filters: Double
    /// The counts and checksums of the three paths agreed.
    var consistent: Bool

    var inline: Double { parse / both - 1 }
    var ok: Bool { both >= 500_000 && inline <= 0.20 && consistent }

    func row(_ label: String) -> String {
        func k(_ rate: Double) -> String { "\(Int(rate / 1000))k" }
        func pct(_ x: Double) -> String { fixed(x * 100, 1) + "%" }
        return "\(label.padding(8))\(k(parse).padding(16))\(k(both).padding(19))\(k(filters).padding(18))\(pct(parse / filters).padding(15))\(pct(inline).padding(9))"
            + (ok ? "" : !consistent ? "   <-- paths disagree" : both < 500_000 ? "   <-- below 500k/s" : "   <-- filters over 20%")
    }
}

/// Measures every format named (all by default) in this process; prints a row each.
func measureHere() -> [Figures] {
    // `weir-bench-formats json line` runs only the formats named.
    let only = Set(CommandLine.arguments.dropFirst().compactMap(PayloadFormat.init(rawValue:)))
    var out: [Figures] = []
    for (format, decoder) in [(PayloadFormat.json, JSONPayloadDecoder() as any PayloadDecoder),
                              (.senml, SenMLPayloadDecoder()), (.line, LinePayloadDecoder())]
        where only.isEmpty || only.contains(format) {
        let all = makeMessages(format)
        let warm = all[..<(devices * warmupPerDevice)]
        let messages = all[(devices * warmupPerDevice)...]
        let warmDecoded = handOvers(decoder, warm)
        let decoded = handOvers(decoder, messages)
        var bestParse = Double.infinity
        var bestBoth = Double.infinity
        var bestFilter = Double.infinity
        var parseCounts = Counts()
        var bothCounts = Counts()
        var filterCounts = Counts()
        for _ in 0..<rounds {
            // Both chains first see the warm-up messages, untimed.
            var both = ParseAndFilter(decoder: decoder)
            both.feed(warm)
            both.c = Counts()
            var filters = FilterOnly()
            filters.feed(warmDecoded.readings[...], lastMessages: warmDecoded.last[...])
            filters.c = Counts()
            let t1 = clock.now
            parseCounts = parseOnly(decoder, messages)
            let t2 = clock.now
            both.feed(messages)
            let t3 = clock.now
            filters.feed(decoded.readings[...], lastMessages: decoded.last[...])
            let t4 = clock.now
            for r in both.chain.flushAll() { both.c.emitted += 1; both.c.checksum += r.value }
            for r in filters.chain.flushAll() { filters.c.emitted += 1; filters.c.checksum += r.value }
            bothCounts = both.c
            filterCounts = filters.c
            bestParse = min(bestParse, seconds(t2 - t1))
            bestBoth = min(bestBoth, seconds(t3 - t2))
            bestFilter = min(bestFilter, seconds(t4 - t3))
        }
        let n = Double(parseCounts.readings)
        // Both filtered paths must have judged every reading alike.
        let sameOutcomes = (bothCounts.passed, bothCounts.held, bothCounts.dropped, bothCounts.deadLetters, bothCounts.emitted)
            == (filterCounts.passed, filterCounts.held, filterCounts.dropped, filterCounts.deadLetters, filterCounts.emitted)
        let consistent = parseCounts.readings == devices * messagesPerDevice * 3 && bothCounts.readings == parseCounts.readings
            && bothCounts.checksum == filterCounts.checksum && sameOutcomes
        let figures = Figures(format: format.rawValue, parse: n / bestParse, both: n / bestBoth, filters: n / bestFilter, consistent: consistent)
        print(figures.row(format.rawValue) + "\(String(bothCounts.passed).padding(8))\(String(bothCounts.held).padding(6))\(String(bothCounts.dropped).padding(9))\(bothCounts.emitted)")
        if !consistent {
            print("  !! \(format.rawValue): decoded \(parseCounts.readings) readings (expected \(devices * messagesPerDevice * 3)); checksums \(bothCounts.checksum) vs \(filterCounts.checksum); outcomes alike: \(sameOutcomes)")
        }
        out.append(figures)
    }
    return out
}

/// Runs this benchmark in `count` fresh processes, one after another, and returns each
/// one's output. Each process lands its stack, heap and code at other addresses (ASLR),
/// which alone moves the in-line figure by a few points: one process is one sample.
func runProcesses(_ count: Int) -> [(output: String, failed: Bool)] {
    #if os(Linux)
    let executable = "/proc/self/exe"
    #else
    let executable = CommandLine.arguments[0]
    #endif
    var outputs: [(output: String, failed: Bool)] = []
    for _ in 0..<count {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fatalError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        var environment: [UnsafeMutablePointer<CChar>?] = [strdup("WEIR_BENCH_PROCESSES=1")]
        var e = environ
        while let entry = e.pointee {
            if !String(cString: entry).hasPrefix("WEIR_BENCH_PROCESSES=") { environment.append(strdup(entry)) }
            e += 1
        }
        environment.append(nil)
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environment)
        posix_spawn_file_actions_destroy(&actions)
        close(fds[1])
        argv.forEach { free($0) }
        environment.forEach { free($0) }
        guard spawned == 0 else { fatalError("cannot run \(executable): error \(spawned)") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        // Exited normally with status 0 (the wait status is 0 exactly then).
        outputs.append((String(decoding: bytes, as: UTF8.self), status != 0))
    }
    return outputs
}

/// `WEIR_BENCH_PROCESSES` (default 5): how many processes measure; the verdict is on each
/// figure's median across them, and every process's rows are printed.
let processes = max(1, Int(getenvString("WEIR_BENCH_PROCESSES") ?? "") ?? 5)
let header = "format  parse-only r/s  parse+filters r/s  filters-only r/s  filters/parse  in-line"
if processes == 1 {
    print("weir-bench-formats: \(devices) devices x \(messagesPerDevice) messages x 3 metrics per format, \(rules.count) filter rules, hand-overs of \(handOver) messages, warmed by \(warmupPerDevice) messages per device, best of \(rounds)")
    print(header + "  passed  held  dropped  emitted")
    let figures = measureHere()
    // For a parent process: one line per format, in full precision.
    for f in figures { print("figures \(f.format) \(f.parse) \(f.both) \(f.filters) \(f.consistent ? 1 : 0)") }
    print(figures.allSatisfy(\.ok) ? "targets met: >= 500k readings/s with filters, filters <= 20% over parsing" : "TARGETS NOT MET (see the marked rows)")
} else {
    print("weir-bench-formats: \(devices) devices x \(messagesPerDevice) messages x 3 metrics per format, \(rules.count) filter rules, hand-overs of \(handOver) messages, warmed by \(warmupPerDevice) messages per device, best of \(rounds) rounds in each of \(processes) processes")
    print("'filters/parse' = filters alone (on readings decoded beforehand) / parsing alone;")
    print("'in-line' = parse+filters / parse-only - 1, the target's measure (<= 20%), which also pays for the two sharing caches")
    print("each process lands its code, stack and heap at other addresses, which alone moves the in-line figure by a few points:")
    print("the verdict is on the median process of each format; every process's figures are shown")
    print("        " + header)
    var byFormat: [String: [Figures]] = [:]
    var order: [String] = []
    var allOK = true
    for (i, (output, failed)) in runProcesses(processes).enumerated() {
        if failed {
            print("#\(i + 1): the process failed; its output:\n\(output)")
            allOK = false
        }
        for line in output.split(separator: "\n") where line.hasPrefix("figures ") {
            let fields = line.split(separator: " ")
            guard fields.count == 6, let parse = Double(fields[2]), let both = Double(fields[3]), let filters = Double(fields[4]) else {
                fatalError("process \(i + 1) printed an unreadable line: \(line)")
            }
            let f = Figures(format: String(fields[1]), parse: parse, both: both, filters: filters, consistent: fields[5] == "1")
            if byFormat[f.format] == nil { order.append(f.format) }
            byFormat[f.format, default: []].append(f)
            print("#\(i + 1)".padding(8) + f.row(f.format))
        }
        for line in output.split(separator: "\n") where line.hasPrefix("  !! ") { print(line) }
    }
    if order.isEmpty { fatalError("no process printed figures") }
    print("median  " + header)
    for format in order {
        let all = byFormat[format] ?? []
        // The median process by in-line cost; its rates are shown with it.
        let median = all.sorted { $0.inline < $1.inline }[all.count / 2]
        var shown = median
        shown.consistent = all.allSatisfy(\.consistent)
        let spread = all.map(\.inline)
        print("        " + shown.row(format) + "   (in-line \(fixed(spread.min()! * 100, 1))-\(fixed(spread.max()! * 100, 1))% over \(all.count) processes)")
        allOK = allOK && shown.ok
    }
    print(allOK ? "targets met (median process): >= 500k readings/s with filters, filters <= 20% over parsing" : "TARGETS NOT MET (see the marked rows)")
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
