/// Reads one batch in the format of `FORMAT.md`. Every count and length is checked
/// against the bytes that remain before it sizes anything.
enum BatchDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(BatchCodecError) -> Batch {
        var sink = ReadingSink()
        let drops = try walk(bytes, into: &sink)
        return Batch(gateway: sink.gateway, id: sink.id, readings: sink.readings, drops: drops)
    }

    /// Checks and reads one batch, handing its header and then each series to `sink`;
    /// returns the drop-ledger rows.
    static func walk<Sink: BatchSink>(_ bytes: UnsafeRawBufferPointer, into sink: inout Sink) throws(BatchCodecError) -> [DropRecord] {
        let total = bytes.count
        for i in 0..<BatchCodec.magic.count {
            guard i < total else {
                throw BatchCodecError(.truncated, at: total, "\(total) byte(s) is too short for a batch (magic alone is 4)")
            }
            guard bytes[i] == BatchCodec.magic[i] else {
                throw BatchCodecError(.notABatch, at: i, "the input does not start with the batch magic \"WEIR\"")
            }
        }
        guard total > 4 else { throw BatchCodecError(.truncated, at: total, "the input ends before the version byte") }
        guard bytes[4] == BatchCodec.version else {
            throw BatchCodecError(.unsupportedVersion, at: 4, "version \(bytes[4]) (this decoder reads version \(BatchCodec.version))")
        }
        let minimum = BatchCodec.headerSize + BatchCodec.trailerSize
        guard total >= minimum else {
            throw BatchCodecError(.truncated, at: total, "\(total) bytes is shorter than the \(minimum)-byte header and checksum")
        }
        let bodyEnd = total - BatchCodec.trailerSize
        var stored: UInt32 = 0
        for k in 0..<4 { stored |= UInt32(bytes[bodyEnd + k]) << (8 * k) }
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<bodyEnd]))
        guard stored == computed else {
            throw BatchCodecError(.checksumMismatch, at: bodyEnd,
                                  "stored CRC-32C is \(hex(stored)), the bytes give \(hex(computed)) (damaged or truncated)")
        }
        guard bytes[5] == 0 else {
            throw BatchCodecError(.malformed, at: 5, "flags byte is \(bytes[5]) (version 1 defines none)")
        }

        var r = ByteReader(bytes, from: BatchCodec.headerSize, to: bodyEnd)
        let gateway = try r.string("gateway")
        let id = try r.string("batch id")

        // Each string costs at least its length byte.
        let stringCount = try r.count("string count", atMost: r.remaining)
        var names: [String] = []
        names.reserveCapacity(stringCount)
        for i in 0..<stringCount { names.append(try r.string("string \(i)")) }

        let readingCount = try r.count("reading count", atMost: r.remaining &* BatchCodec.maxReadingsPerByte)
        // A series costs at least 6 bytes (two names, a count, a ts, an encoding, a value).
        let seriesCount = try r.count("series count", atMost: r.remaining / 6)
        // Typical data takes 1–2 bytes a reading; denser input grows the output as it proves itself.
        sink.begin(gateway: gateway, id: id, names: names, readingCount: readingCount, reserve: min(readingCount, r.remaining &* 2))
        var seen = 0
        var times: [Int64] = []
        var values: [Int64] = [] // value bit patterns
        var previousFirstTime: Int64 = 0
        for s in 0..<seriesCount {
            let device = try nameIndex(&r, names, "device of series \(s)")
            let metric = try nameIndex(&r, names, "metric of series \(s)")
            let countAt = r.position
            let n = try r.count("reading count of series \(s)", atMost: readingCount &- seen)
            guard n > 0 else { throw r.malformed("series \(s) has no readings", at: countAt) }
            // Refuse counts the remaining bytes cannot hold before sizing the scratch columns.
            let minimum = (n >= 3 ? 3 : n) &+ IntBlockColumn.minimumBytes(count: max(n &- 2, 0))
                &+ 1 &+ min(9 &+ (n &+ 6) / 8, 1 &+ IntBlockColumn.minimumBytes(count: n &- 1))
            guard minimum <= r.remaining else {
                throw BatchCodecError(.truncated, at: countAt,
                                      "series \(s) claims \(n) readings, which need at least \(minimum) bytes; \(r.remaining) remain")
            }
            if times.count < n {
                times = [Int64](repeating: 0, count: n)
                values = [Int64](repeating: 0, count: n)
            }
            try times.withUnsafeMutableBufferPointer { (t: inout UnsafeMutableBufferPointer<Int64>) throws(BatchCodecError) in
                try readTimes(n, &r, into: t.baseAddress!, after: previousFirstTime, series: s)
            }
            previousFirstTime = times[0]
            try values.withUnsafeMutableBufferPointer { (v: inout UnsafeMutableBufferPointer<Int64>) throws(BatchCodecError) in
                try readValues(n, &r, into: v.baseAddress!, series: s)
            }
            times.withUnsafeBufferPointer { t in
                values.withUnsafeBufferPointer { v in
                    sink.series(device: device, metric: metric, times: t.baseAddress!, values: v.baseAddress!, count: n)
                }
            }
            seen &+= n
        }
        guard seen == readingCount else {
            throw r.malformed("the series hold \(seen) readings, the header says \(readingCount)")
        }

        // A drop row costs at least 5 bytes.
        let dropCount = try r.count("drop count", atMost: r.remaining / 5)
        var drops: [DropRecord] = []
        drops.reserveCapacity(dropCount)
        for i in 0..<dropCount {
            let device = try name(&r, names, "device of drop \(i)")
            let metric = try name(&r, names, "metric of drop \(i)")
            let from = try r.zigzag("start of drop \(i)")
            let span = try r.zigzag("span of drop \(i)")
            let count = try r.zigzag("count of drop \(i)")
            drops.append(DropRecord(device: device, metric: metric, from: from, to: from &+ span, count: count))
        }
        guard r.remaining == 0 else {
            throw r.malformed("\(r.remaining) unexpected byte(s) after the drop ledger")
        }
        return drops
    }

    private static func name(
        _ r: inout ByteReader, _ names: [String], _ what: @autoclosure () -> String
    ) throws(BatchCodecError) -> String {
        names[try nameIndex(&r, names, what())]
    }

    private static func nameIndex(
        _ r: inout ByteReader, _ names: [String], _ what: @autoclosure () -> String
    ) throws(BatchCodecError) -> Int {
        let at = r.position
        let i = try r.varint(what())
        guard i < UInt64(names.count) else {
            throw r.malformed("\(what()) is string \(i), but the table has \(names.count)", at: at)
        }
        return Int(i)
    }

    private static func readTimes(
        _ n: Int, _ r: inout ByteReader, into t: UnsafeMutablePointer<Int64>, after previousFirstTime: Int64, series s: Int
    ) throws(BatchCodecError) {
        t[0] = previousFirstTime &+ (try r.zigzag("first ts of series \(s)"))
        guard n >= 2 else { return }
        var delta = try r.zigzag("first ts delta of series \(s)")
        t[1] = t[0] &+ delta
        guard n >= 3 else { return }
        let modeAt = r.position
        let mode = try r.byte("ts encoding of series \(s)")
        switch mode {
        case BatchEncoder.timesAsDeltaOfDeltas:
            // Delta-of-deltas land in t[2...], then are summed in place.
            try IntBlockColumn.read(n &- 2, from: &r, into: t + 2, what: "ts of series \(s)")
            var prev = t[1]
            for i in 2..<n {
                delta &+= t[i]
                prev &+= delta
                t[i] = prev
            }
        case BatchEncoder.timesAsDeltas:
            try IntBlockColumn.read(n &- 2, from: &r, into: t + 2, what: "ts of series \(s)")
            var prev = t[1]
            for i in 2..<n {
                prev &+= t[i]
                t[i] = prev
            }
        case BatchEncoder.timesAsLinearResiduals:
            var start = 2
            while start < n {
                let c = min(IntBlockColumn.blockSize, n &- start)
                let slope = try r.zigzag("ts slope of series \(s)")
                try IntBlockColumn.readBlock(c, from: &r, into: t + start, what: "ts of series \(s)")
                let prev = t[start &- 1]
                for k in 0..<c {
                    t[start &+ k] = prev &+ Int64(k &+ 1) &* slope &+ t[start &+ k]
                }
                start &+= c
            }
        default:
            throw r.malformed("series \(s) has ts encoding \(mode) (0 = delta-of-deltas, 1 = deltas, 2 = linear)", at: modeAt)
        }
    }

    /// Reads a value column as bit patterns into `v`.
    private static func readValues(
        _ n: Int, _ r: inout ByteReader, into v: UnsafeMutablePointer<Int64>, series s: Int
    ) throws(BatchCodecError) {
        let encodingAt = r.position
        let encoding = try r.byte("value encoding of series \(s)")
        if encoding == BatchEncoder.xorEncoding {
            let lengthAt = r.position
            let length = try r.count("XOR stream length of series \(s)", atMost: r.remaining)
            // 64 bits for the first value, at least one for each later one.
            guard length >= 8 &+ (n &+ 6) / 8 else {
                throw r.malformed("XOR stream of series \(s) is \(length) bytes, too short for \(n) values", at: lengthAt)
            }
            try XORColumn.read(n, length: length, from: &r, into: v)
            return
        }
        let d = Int(encoding &- BatchEncoder.scaledBase)
        guard d <= DecimalScaling.maxDecimals else {
            throw r.malformed("series \(s) has value encoding \(encoding) (0 = XOR, 1–16 = scaled decimal)", at: encodingAt)
        }
        var k = try r.zigzag("first scaled value of series \(s)")
        let scale = DecimalScaling.powers[d]
        v[0] = Int64(bitPattern: (Double(k) / scale).bitPattern)
        guard n >= 2 else { return }
        try IntBlockColumn.read(n &- 1, from: &r, into: v + 1, what: "values of series \(s)")
        for i in 1..<n {
            k &+= v[i]
            v[i] = Int64(bitPattern: (Double(k) / scale).bitPattern)
        }
    }

    private static func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// What `BatchDecoder.walk` hands over: the header, then each series as it is read.
protocol BatchSink {
    /// Before the first series. `reserve` is how many readings to make room for.
    mutating func begin(gateway: String, id: String, names: [String], readingCount: Int, reserve: Int)
    /// One series: string-table indices of its names, and `count` timestamps and value
    /// bit patterns (valid only during the call).
    mutating func series(device: Int, metric: Int, times: UnsafePointer<Int64>, values: UnsafePointer<Int64>, count: Int)
}

/// Collects a batch's readings (`BatchCodec.decode`).
struct ReadingSink: BatchSink {
    var gateway = ""
    var id = ""
    var names: [String] = []
    var readings: [Reading] = []

    mutating func begin(gateway: String, id: String, names: [String], readingCount: Int, reserve: Int) {
        self.gateway = gateway
        self.id = id
        self.names = names
        readings.reserveCapacity(reserve)
    }

    mutating func series(device: Int, metric: Int, times: UnsafePointer<Int64>, values: UnsafePointer<Int64>, count: Int) {
        let d = names[device]
        let m = names[metric]
        for i in 0..<count {
            readings.append(Reading(device: d, metric: m, ts: times[i], value: Double(bitPattern: UInt64(bitPattern: values[i]))))
        }
    }
}
