// The peers' benchmark (shared/data/peers_gen.py, issue 12) generated in Swift and run end
// to end: posted over HTTP to a real `weir-cloud serve` process in binary batches, then
// every window read back right after the last batch and checked against the generator's
// own truth.
//
//   bench/run cloud --peers            WEIR_BENCH_PEERS_READINGS=1000000 for a quick run
//
// Shape (as peers_gen.py): 1,000 devices, one reading every 10 s each (a random phase per
// device), 0–5 s network jitter, 5% of devices offline from T0+1 h to T0+2.5 h whose
// backlog arrives from T0+2.5 h on at 100× real time, interleaved with live data (up to
// 1.5 h late), and 2% of readings resent 0–120 s later. Readings are posted in arrival
// order, 10,000 a batch, metric `v`, `windows: [60s]`, `late_policy: update`,
// `allowed_lateness: 3h`. The retention pruner (which folds the write-back log on every
// tick) runs every `WEIR_BENCH_PEERS_PRUNE_INTERVAL` (default 2s) so folds race the ingest
// and the read-back, as they did in the issue.
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WeirCloud
import WeirCompression
import WeirCore
import WeirTestSupport
import WeirWire

struct PeersData {
    static let devices = 1_000
    static let periodMs: Int64 = 10_000
    static let t0: Int64 = 1_704_067_200_000
    static let windowMs: Int64 = 60_000
    static let deviceNames = (0..<devices).map { String(format: "dev-%04d", $0) }

    /// One 60 s window of the truth.
    struct Window: Equatable {
        var start: Int64
        var count: Int64
        var sum: Double
        var min: Double
        var max: Double
    }

    /// Every reading as posted (duplicates included), in arrival order.
    var device: [Int32] = []
    var ts: [Int64] = []
    var value: [Double] = []
    /// Distinct readings.
    var distinct = 0
    /// Per device, its windows over the distinct readings, ascending.
    var truth: [[Window]] = []

    init(readings total: Int) {
        var rng = SplitMix64(seed: 42)
        let perDevice = max(1, total / Self.devices)
        let n = perDevice * Self.devices
        distinct = n
        let phase = (0..<Self.devices).map { _ in Int64(rng.below(Int(Self.periodMs))) }
        var order = Array(0..<Self.devices)
        order.shuffle(using: &rng)
        var offline = [Bool](repeating: false, count: Self.devices)
        for d in order.prefix(Self.devices / 20) { offline[d] = true }
        let outageFrom = Self.t0 + 3_600_000, outageTo = Self.t0 + 9_000_000

        var uDevice = [Int32](repeating: 0, count: n)
        var uTs = [Int64](repeating: 0, count: n)
        var uValue = [Double](repeating: 0, count: n)
        var arrival = [Int64](repeating: 0, count: n)
        truth = Array(repeating: [], count: Self.devices)
        var i = 0
        for d in 0..<Self.devices {
            var windows: [Window] = []
            windows.reserveCapacity(perDevice / 6 + 2)
            for k in 0..<perDevice {
                let t = Self.t0 + Int64(k) * Self.periodMs + phase[d]
                let v = (Self.normal(&rng) * 5 + 20) * 100
                let value = v.rounded() / 100
                var arrives = t + Int64(rng.below(5_000))
                if offline[d] && t >= outageFrom && t < outageTo {
                    arrives = outageTo + (t - outageFrom) / 100 + Int64(rng.below(2_000))
                }
                uDevice[i] = Int32(d); uTs[i] = t; uValue[i] = value; arrival[i] = arrives
                i += 1
                let start = WindowMath.start(of: t, size: Self.windowMs)
                if windows.last?.start == start {
                    windows[windows.count - 1].count += 1
                    windows[windows.count - 1].sum += value
                    windows[windows.count - 1].min = Swift.min(windows[windows.count - 1].min, value)
                    windows[windows.count - 1].max = Swift.max(windows[windows.count - 1].max, value)
                } else {
                    windows.append(Window(start: start, count: 1, sum: value, min: value, max: value))
                }
            }
            truth[d] = windows
        }
        // 2% resent 0–120 s after their first arrival.
        var resent: [Int] = []
        resent.reserveCapacity(n / 45)
        for j in 0..<n where rng.below(50) == 0 { resent.append(j) }
        // Arrival order (stable): key = arrival time, then position (resends after the originals).
        var keys: [UInt64] = []
        keys.reserveCapacity(n + resent.count)
        let base = Self.t0 - 1_000
        for j in 0..<n { keys.append(UInt64(arrival[j] - base) << 25 | UInt64(j)) }
        var resentArrival: [Int64] = []
        for (r, j) in resent.enumerated() {
            let arrives = arrival[j] + Int64(rng.below(120_000))
            resentArrival.append(arrives)
            keys.append(UInt64(arrives - base) << 25 | UInt64(n + r))
        }
        precondition(n + resent.count < 1 << 25, "at most 33M readings")
        keys.sort()
        device.reserveCapacity(keys.count); ts.reserveCapacity(keys.count); value.reserveCapacity(keys.count)
        for key in keys {
            var j = Int(key & ((1 << 25) - 1))
            if j >= n { j = resent[j - n] }
            device.append(uDevice[j]); ts.append(uTs[j]); value.append(uValue[j])
        }
    }

    var count: Int { ts.count }

    /// A standard normal variate (Box–Muller).
    static func normal(_ rng: inout SplitMix64) -> Double {
        let u1 = (Double(rng.next() >> 11) + 1) / 9_007_199_254_740_993
        let u2 = Double(rng.next() >> 11) / 9_007_199_254_740_992
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// Readings `range` as a batch.
    func batch(_ range: Range<Int>, id: String) -> Batch {
        Batch(gateway: "gw-1", id: id, readings: range.map {
            Reading(device: Self.deviceNames[Int(device[$0])], metric: "v", ts: ts[$0], value: value[$0])
        })
    }
}

enum PeersBench {
    static func run(_ options: Options) async throws {
        let environment = ProcessInfo.processInfo.environment
        let total = environment["WEIR_BENCH_PEERS_READINGS"].flatMap { Int($0.replacingOccurrences(of: "_", with: "")) } ?? 10_000_000
        let pruneInterval = environment["WEIR_BENCH_PEERS_PRUNE_INTERVAL"] ?? "2s"
        let batchSize = options.batchSize
        var started = ContinuousClock.now
        let data = PeersData(readings: total)
        print(String(format: "weir-bench-cloud --peers: %d readings posted (%d distinct) from 1000 devices, %d windows of 60 s; generated in %.1f s",
                     data.count, data.distinct, data.truth.reduce(0) { $0 + $1.count }, seconds(ContinuousClock.now - started)))

        // The floor on the same readings in the same order.
        let floor = options.skipFloor ? Double.nan : try floorRate(path: options.directory + "/peers-floor.db") { emit in
            var at = 0
            while at < data.count {
                let end = min(at + batchSize, data.count)
                try emit((at..<end).map { (Int(data.device[$0]), data.ts[$0], data.value[$0]) })
                at = end
            }
        }
        print(String(format: "floor  (plain INSERT OR IGNORE, same readings): %10.0f readings/s", floor))

        // Encode first: the edge encodes while it buffers, not while it forwards.
        var bodies: [ByteBuffer] = []
        var at = 0
        while at < data.count {
            let end = min(at + batchSize, data.count)
            bodies.append(ByteBuffer(bytes: try WireBatch.encode(data.batch(at..<end, id: "gw-1:\(bodies.count + 1)"))))
            at = end
        }

        // A real weir-cloud process, the release build beside this benchmark.
        setenv("WEIR_BIN_DIR", URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path, 1)
        let directory = options.directory + "/peers-cloud"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cloud = try await CloudProcess.start(in: directory, windows: ["60s"], extraConfig: """
            late_policy: update
            allowed_lateness: 3h
            prune_interval: \(pruneInterval)

            """)
        do {
            started = ContinuousClock.now
            var accepted = 0, duplicates = 0, late = 0
            for body in bodies {
                let counts = try await postWireBatch(body, to: cloud.url)
                accepted += counts["accepted"]?.value ?? 0
                duplicates += counts["duplicates"]?.value ?? 0
                late += counts["late"]?.value ?? 0
            }
            let ingest = seconds(ContinuousClock.now - started)
            let rate = Double(data.count) / ingest
            print(String(format: "over HTTP to weir-cloud (real process, binary batches of %d): %9.0f readings/s   ratio to floor %.2f  (%.1f s)",
                         batchSize, rate, rate / floor, ingest))
            print("  accepted \(accepted), duplicates \(duplicates), late \(late) (prune_interval \(pruneInterval))")

            // Read every window back at once and check it against the truth.
            started = ContinuousClock.now
            var windowsChecked = 0, wrongWindows = 0, missingReadings: Int64 = 0, extraReadings: Int64 = 0
            var firstProblem: String?
            for d in 0..<PeersData.devices {
                let name = PeersData.deviceNames[d]
                let (status, body) = try await HTTPGet.fetch("\(cloud.url)/v1/devices/\(name)/windows?metric=v&size=60s&from=0&to=\(Int64.max)")
                guard status == 200 else { throw BenchError("GET windows of \(name) answered \(status)") }
                let answer = try JSONDecoder().decode(WindowsAnswer.self, from: body)
                var answered: [Int64: WindowsAnswer.Window] = [:]
                for w in answer.windows { answered[w.start] = w }
                for expected in data.truth[d] {
                    windowsChecked += 1
                    guard let got = answered.removeValue(forKey: expected.start) else {
                        wrongWindows += 1
                        missingReadings += expected.count
                        if firstProblem == nil { firstProblem = "\(name) window \(expected.start) missing" }
                        continue
                    }
                    if got.count != expected.count || abs(got.sum - expected.sum) > 1e-6 || got.min != expected.min || got.max != expected.max {
                        wrongWindows += 1
                        missingReadings += max(0, expected.count - got.count)
                        extraReadings += max(0, got.count - expected.count)
                        if firstProblem == nil { firstProblem = "\(name) window \(expected.start): count \(got.count) sum \(got.sum) min \(got.min) max \(got.max), expected \(expected)" }
                    }
                }
                for (_, extra) in answered {
                    wrongWindows += 1
                    extraReadings += extra.count
                    if firstProblem == nil { firstProblem = "\(name) window \(extra.start) should not exist" }
                }
            }
            print(String(format: "read back right after the last batch: %d windows of 1000 devices in %.1f s; %d wrong, %lld readings missing, %lld extra",
                         windowsChecked, seconds(ContinuousClock.now - started), wrongWindows, missingReadings, extraReadings))
            await cloud.stop()
            if let firstProblem { throw BenchError("the answers are not exact; first difference: \(firstProblem)") }
            print("  exact: every window equals the generator's truth")
        } catch {
            FileHandle.standardError.write(Data("weir-cloud log tail:\n\(cloud.process.outputTail())\n".utf8))
            await cloud.stop()
            throw error
        }
    }
}

/// A JSON number field of the batch answer (other fields are ignored).
/// POSTs one binary wire batch to weir-cloud at `url`; the counts of its `200` answer.
func postWireBatch(_ body: ByteBuffer, to url: String) async throws -> [String: AnyCount] {
    var request = HTTPClientRequest(url: "\(url)/v1/batches")
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/vnd.weir.batch")
    request.body = .bytes(body)
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
    let answer = try await response.body.collect(upTo: 1 << 20)
    guard response.status == .ok else { throw BenchError("POST answered \(response.status): \(String(buffer: answer))") }
    return try JSONDecoder().decode([String: AnyCount].self, from: Data(answer.readableBytesView))
}

struct AnyCount: Decodable {
    var value: Int?
    init(from decoder: any Decoder) throws {
        value = try? decoder.singleValueContainer().decode(Int.self)
    }
}
