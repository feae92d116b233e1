import ArgumentParser
import Foundation
import WeirCompression
import WeirCore

/// `weir-edge batch encode|decode|stats`: the binary batch codec from the command line.
///
/// ```
/// weir-edge batch encode < readings.jsonl > batch.weir
/// weir-edge batch decode < batch.weir
/// weir-edge batch stats batch.weir
/// ```
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Encode JSON lines into the binary batch codec, decode it back, or measure a batch.",
        subcommands: [Encode.self, Decode.self, Stats.self]
    )

    /// The largest batch the commands read (after zstd), so a damaged file cannot exhaust memory.
    static let defaultMaxSize = 512 << 20

    /// `weir-edge batch encode`: JSON lines in, a wire batch (codec inside zstd) out.
    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn JSON lines into a binary batch.",
            discussion: """
            Each input line is a reading {"device": "d1", "metric": "temp", "ts": 1732540000123, "value": 21.5} \
            or a drop-ledger row {"device": "d1", "metric": "temp", "from": ..., "to": ..., "count": 12}. \
            Blank lines are skipped. Any invalid line stops the command with its line number.
            """
        )

        @Argument(help: "JSON lines file to read (default: standard input).")
        var input: String?

        @Option(help: "Gateway name stored in the batch.")
        var gateway = "cli"

        @Option(help: "Batch id (idempotency key) stored in the batch.")
        var id = "cli:0"

        @Flag(help: "Write the raw codec without the zstd wrapper.")
        var raw = false

        func run() throws {
            let text = try BatchIO.readInput(input)
            let batch = try BatchJSONLines.parse(text, gateway: gateway, id: id)
            let bytes = raw ? BatchCodec.encode(batch) : try WireBatch.encode(batch)
            guard isatty(STDOUT_FILENO) == 0 else {
                throw WeirError(.badArgument, "refusing to write a binary batch to a terminal; redirect standard output to a file")
            }
            try BatchIO.writeStandardOutput(bytes)
        }
    }

    /// `weir-edge batch decode`: a wire or raw batch in, JSON lines out.
    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a binary batch as JSON lines (readings, then drop-ledger rows)."
        )

        @Argument(help: "Batch file to read (default: standard input).")
        var input: String?

        @Option(help: "Largest decompressed batch accepted, in bytes.")
        var maxSize = BatchCommand.defaultMaxSize

        func run() throws {
            let batch = try BatchIO.decode(try BatchIO.readInput(input), maxSize: maxSize, source: input ?? "standard input")
            var out: [UInt8] = []
            out.reserveCapacity(batch.readings.count * 72 + batch.drops.count * 96)
            var nonFinite = 0
            for r in batch.readings {
                if !r.value.isFinite { nonFinite += 1 }
                BatchJSONLines.append(r, to: &out)
                if out.count >= 1 << 20 {
                    try BatchIO.writeStandardOutput(out)
                    out.removeAll(keepingCapacity: true)
                }
            }
            for d in batch.drops { BatchJSONLines.append(d, to: &out) }
            try BatchIO.writeStandardOutput(out)
            if nonFinite > 0 {
                BatchIO.warn("\(nonFinite) reading(s) carry a non-finite value, written as null")
            }
        }
    }

    /// `weir-edge batch stats`: what a batch holds and what it costs.
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print readings, series, bytes and bytes per reading of a batch file."
        )

        @Argument(help: "Batch file to measure.")
        var file: String

        @Option(help: "Largest decompressed batch accepted, in bytes.")
        var maxSize = BatchCommand.defaultMaxSize

        func run() throws {
            let bytes = try BatchIO.readInput(file)
            let batch = try BatchIO.decode(bytes, maxSize: maxSize, source: file)
            let codecBytes = BatchCodec.encode(batch).count
            let series = Set(batch.readings.map(\.series)).count
            let form = BatchCodec.looksLikeBatch(bytes) ? "raw codec" : "wire (codec inside zstd)"
            func perReading(_ n: Int) -> String {
                batch.readings.isEmpty ? "-" : String(format: "%.3f", Double(n) / Double(batch.readings.count))
            }
            var lines = [
                "file:              \(file)",
                "form:              \(form)",
                "gateway:           \(batch.gateway)",
                "batch:             \(batch.id)",
                "readings:          \(batch.readings.count)",
                "series:            \(series)",
                "drop rows:         \(batch.drops.count)",
                "bytes:             \(bytes.count)",
                "bytes/reading:     \(perReading(bytes.count))",
                "codec bytes:       \(codecBytes) (\(perReading(codecBytes)) per reading before zstd)",
            ]
            if let first = batch.readings.map(\.ts).min(), let last = batch.readings.map(\.ts).max() {
                lines.append("ts range:          \(first) … \(last)")
            }
            print(lines.joined(separator: "\n"))
        }
    }
}

/// Input, output and decoding shared by the batch subcommands.
enum BatchIO {
    /// Reads a whole file or standard input, refusing more than `limit` bytes (an endless
    /// pipe must be an error, not a process that grows until the machine runs out).
    static func readInput(_ path: String?, limit: Int = BatchCommand.defaultMaxSize) throws -> [UInt8] {
        guard let path, path != "-" else {
            var bytes: [UInt8] = []
            while let data = try FileHandle.standardInput.read(upToCount: 1 << 20), !data.isEmpty {
                bytes.append(contentsOf: data)
                if bytes.count > limit {
                    throw WeirError(.badInput, "standard input is larger than \(limit) bytes")
                }
            }
            return bytes
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw WeirError(.badArgument, "\(path): no such file")
        }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > limit {
            throw WeirError(.badInput, "\(path) is \(size) bytes, larger than \(limit)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WeirError(.badArgument, "\(path): cannot be read")
        }
        return [UInt8](data)
    }

    static func writeStandardOutput(_ bytes: [UInt8]) throws {
        try FileHandle.standardOutput.write(contentsOf: Data(bytes))
    }

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("weir-edge: warning: \(message)\n".utf8))
    }

    static func decode(_ bytes: [UInt8], maxSize: Int, source: String) throws -> Batch {
        guard !bytes.isEmpty else { throw WeirError(.badInput, "\(source) is empty (expected a binary batch)") }
        do {
            return try WireBatch.decode(bytes, maxSize: maxSize)
        } catch let error as BatchCodecError {
            throw WeirError(.badInput, "\(source) is not a valid batch: \(error)")
        } catch let error as CompressionError {
            throw WeirError(.badInput, "\(source) is not a valid batch: \(error)")
        }
    }
}

/// JSON lines ⇄ readings and drop rows, for `encode` and `decode`.
enum BatchJSONLines {
    /// One input line. `value` may be a number or a boolean (0/1).
    private struct Line: Decodable {
        var device: String?
        var metric: String?
        var ts: Int64?
        var value: Double?
        var from: Int64?
        var to: Int64?
        var count: Int64?

        enum CodingKeys: String, CodingKey { case device, metric, ts, value, from, to, count }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            device = try c.decodeIfPresent(String.self, forKey: .device)
            metric = try c.decodeIfPresent(String.self, forKey: .metric)
            ts = try Line.integer(c, .ts)
            from = try Line.integer(c, .from)
            to = try Line.integer(c, .to)
            count = try Line.integer(c, .count)
            if let flag = try? c.decodeIfPresent(Bool.self, forKey: .value) {
                value = flag ? 1 : 0
            } else {
                value = try c.decodeIfPresent(Double.self, forKey: .value)
            }
        }

        /// An Int64 field; a fractional or out-of-range number gets its own message
        /// (Foundation would call it "not valid JSON").
        private static func integer(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Int64? {
            do {
                return try c.decodeIfPresent(Int64.self, forKey: key)
            } catch {
                if let number = try? c.decodeIfPresent(Double.self, forKey: key) {
                    throw DecodingError.dataCorrupted(.init(
                        codingPath: [key], debugDescription: "\(number) is not a 64-bit integer"))
                }
                throw error
            }
        }
    }

    static func parse(_ text: [UInt8], gateway: String, id: String) throws -> Batch {
        var readings: [Reading] = []
        var drops: [DropRecord] = []
        let decoder = JSONDecoder()
        var lineNumber = 0
        for rawLine in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            while let last = line.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
                line = line.dropLast()
            }
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            let parsed: Line
            do {
                parsed = try decoder.decode(Line.self, from: Data(line))
            } catch {
                throw WeirError(.badInput, "line \(lineNumber): \(describe(error)) (expected {\"device\", \"metric\", \"ts\", \"value\"})")
            }
            guard let device = parsed.device, let metric = parsed.metric else {
                throw WeirError(.badInput, "line \(lineNumber): \"device\" and \"metric\" (strings) are required")
            }
            if let from = parsed.from, let to = parsed.to, let count = parsed.count, parsed.ts == nil, parsed.value == nil {
                drops.append(DropRecord(device: device, metric: metric, from: from, to: to, count: count))
                continue
            }
            guard let ts = parsed.ts else {
                throw WeirError(.badInput, "line \(lineNumber): \"ts\" (integer epoch milliseconds) is missing")
            }
            guard let value = parsed.value else {
                throw WeirError(.badInput, "line \(lineNumber): \"value\" (a number or boolean) is missing")
            }
            let reading = Reading(device: device, metric: metric, ts: ts, value: value)
            if let problem = reading.problem {
                throw WeirError(.badInput, "line \(lineNumber): \(problem)")
            }
            readings.append(reading)
        }
        return Batch(gateway: gateway, id: id, readings: readings, drops: drops)
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    static func append(_ r: Reading, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"device":"#.utf8)
        appendString(r.device, to: &out)
        out.append(contentsOf: #","metric":"#.utf8)
        appendString(r.metric, to: &out)
        out.append(contentsOf: #","ts":"#.utf8)
        out.append(contentsOf: String(r.ts).utf8)
        out.append(contentsOf: #","value":"#.utf8)
        // Swift prints the shortest text that reads back as the same Double.
        out.append(contentsOf: (r.value.isFinite ? r.value.description : "null").utf8)
        out.append(contentsOf: "}\n".utf8)
    }

    static func append(_ d: DropRecord, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"device":"#.utf8)
        appendString(d.device, to: &out)
        out.append(contentsOf: #","metric":"#.utf8)
        appendString(d.metric, to: &out)
        out.append(contentsOf: #","from":\#(d.from),"to":\#(d.to),"count":\#(d.count)}"#.utf8)
        out.append(UInt8(ascii: "\n"))
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
