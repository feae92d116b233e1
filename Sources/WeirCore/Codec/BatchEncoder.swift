/// Writes one batch in the format of `FORMAT.md`. Scratch buffers are reused across
/// series, so encoding allocates per batch and per series, never per reading.
struct BatchEncoder {
    var out = ByteWriter(capacity: 0)
    private var xorScratch = ByteWriter(capacity: 0)
    var times: [Int64] = []
    var values: [Double] = []
    private var ints: [Int64] = []
    private var slopes: [Int64] = []

    /// The byte before a value column: 0 is XOR; `scaledBase + d` is scaled decimal with `d` decimals.
    static let xorEncoding: UInt8 = 0
    static let scaledBase: UInt8 = 1
    /// The first ts of the previous series, which the next one is written against.
    var previousFirstTime: Int64 = 0

    mutating func encode(_ batch: Batch) -> [UInt8] {
        let readings = batch.readings
        var grouping = SeriesGrouping(readings)
        out = ByteWriter(capacity: 64 + readings.count * 2 + grouping.seriesCount * 24)

        out.bytes.append(contentsOf: BatchCodec.magic)
        out.byte(BatchCodec.version)
        out.byte(0) // flags, reserved
        out.string(batch.gateway)
        out.string(batch.id)

        // String table: device and metric names in order of first use (the series', then the drops').
        var dropNames: [(Int, Int)] = []
        if !batch.drops.isEmpty {
            var strings = StringTable(grouping.names)
            dropNames = batch.drops.map { (strings.index($0.device), strings.index($0.metric)) }
            grouping.names = strings.names
        }
        out.varint(grouping.names.count)
        for name in grouping.names { out.string(name) }

        out.varint(readings.count)
        out.varint(grouping.seriesCount)
        readings.withUnsafeBufferPointer { rs in
            grouping.order.withUnsafeBufferPointer { order in
                for s in 0..<grouping.seriesCount {
                    let lo = grouping.offsets[s]
                    let hi = grouping.offsets[s + 1]
                    out.varint(Int(grouping.seriesNames[s].device))
                    out.varint(Int(grouping.seriesNames[s].metric))
                    out.varint(hi - lo)
                    writeSeries(rs, order: UnsafeBufferPointer(rebasing: order[lo..<hi]))
                }
            }
        }

        return out.finishBatch(drops: batch.drops, names: dropNames)
    }

    /// One series: its timestamp column, then its value column.
    private mutating func writeSeries(_ rs: UnsafeBufferPointer<Reading>, order: UnsafeBufferPointer<Int32>) {
        let n = order.count
        times.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        times.reserveCapacity(n)
        values.reserveCapacity(n)
        for i in order {
            let r = rs[Int(i)]
            times.append(r.ts)
            values.append(r.value)
        }
        writeTimes()
        writeValues()
    }

    /// The byte before a ts column's packed part: how the timestamps after the first two are written.
    static let timesAsDeltaOfDeltas: UInt8 = 0
    static let timesAsDeltas: UInt8 = 1
    static let timesAsLinearResiduals: UInt8 = 2

    /// First ts (against the previous series' first ts), first delta, then the rest
    /// bit-packed as delta-of-deltas, deltas, or residuals from a per-block line —
    /// whichever is smallest. Regular sampling makes all three nearly free. With jitter
    /// `±j`, a dod spans `8j`, a delta `4j` and a residual from the line `2j`: the line
    /// saves a bit or two per reading when the device samples on a steady clock.
    mutating func writeTimes() {
        let n = times.count
        out.zigzag(times[0] &- previousFirstTime)
        previousFirstTime = times[0]
        guard n >= 2 else { return }
        var delta = times[1] &- times[0]
        out.zigzag(delta)
        guard n >= 3 else { return }
        let m = n &- 2
        ints.removeAll(keepingCapacity: true)
        ints.reserveCapacity(3 &* m)
        for i in 2..<n {
            let d = times[i] &- times[i &- 1]
            ints.append(d &- delta)
            delta = d
        }
        for i in 2..<n { ints.append(times[i] &- times[i &- 1]) }
        // Per block of the values t[s..<e]: slope P from the ts before the block to its
        // last ts, and residuals t[s + k] − (t[s − 1] + (k + 1)·P).
        slopes.removeAll(keepingCapacity: true)
        var linearSize = 0
        var s = 2
        while s < n {
            let e = min(s &+ IntBlockColumn.blockSize, n)
            let prev = times[s &- 1]
            // Rounded to nearest: a truncated slope drifts a whole millisecond per 64 readings.
            let span = times[e &- 1] &- prev
            let c = Int64(e &- s)
            var slope = span / c
            let rest = span % c
            if 2 &* rest.magnitude >= c.magnitude { slope &+= rest < 0 ? -1 : 1 }
            slopes.append(slope)
            for k in 0..<(e &- s) {
                ints.append(times[s &+ k] &- prev &- Int64(k &+ 1) &* slope)
            }
            linearSize &+= IntBlockColumn.varintSize(Zigzag.encode(slope))
            s = e
        }
        ints.withUnsafeBufferPointer { all in
            let dods = UnsafeBufferPointer(rebasing: all[0..<m])
            let deltas = UnsafeBufferPointer(rebasing: all[m..<(2 &* m)])
            let residuals = UnsafeBufferPointer(rebasing: all[(2 &* m)...])
            let dodSize = IntBlockColumn.encodedSize(dods)
            let deltaSize = IntBlockColumn.encodedSize(deltas)
            linearSize &+= IntBlockColumn.encodedSize(residuals)
            if linearSize < min(dodSize, deltaSize) {
                out.byte(BatchEncoder.timesAsLinearResiduals)
                var b = 0
                var start = 0
                while start < m {
                    let end = min(start &+ IntBlockColumn.blockSize, m)
                    out.zigzag(slopes[b])
                    IntBlockColumn.writeBlock(UnsafeBufferPointer(rebasing: residuals[start..<end]), into: &out)
                    b &+= 1
                    start = end
                }
            } else if deltaSize < dodSize {
                out.byte(BatchEncoder.timesAsDeltas)
                IntBlockColumn.write(deltas, into: &out)
            } else {
                out.byte(BatchEncoder.timesAsDeltaOfDeltas)
                IntBlockColumn.write(dods, into: &out)
            }
        }
    }

    /// Scaled decimals when they fit, XOR otherwise — whichever is smaller.
    mutating func writeValues() {
        let start = out.count
        let scaledSize: Int? = values.withUnsafeBufferPointer { vs -> Int? in
            guard let d = DecimalScaling.decimals(for: vs) else { return nil }
            let scale = DecimalScaling.powers[d]
            ints.removeAll(keepingCapacity: true)
            ints.reserveCapacity(vs.count)
            guard var prev = DecimalScaling.scaled(vs[0], scale: scale) else { return nil }
            for v in vs.dropFirst() {
                guard let k = DecimalScaling.scaled(v, scale: scale) else { return nil }
                ints.append(k &- prev)
                prev = k
            }
            out.byte(BatchEncoder.scaledBase + UInt8(d))
            out.zigzag(DecimalScaling.scaled(vs[0], scale: scale) ?? 0)
            ints.withUnsafeBufferPointer { IntBlockColumn.write($0, into: &out) }
            return out.count - start
        }
        // The XOR column costs its encoding byte and a length varint on top of the stream.
        let budget = scaledSize.map { $0 - 2 } ?? Int.max
        let fits = values.withUnsafeBufferPointer { XORColumn.write($0, into: &xorScratch, budget: budget) }
        if fits && (scaledSize == nil || 1 + varintSize(xorScratch.count) + xorScratch.count < scaledSize!) {
            out.truncate(to: start)
            out.byte(BatchEncoder.xorEncoding)
            out.varint(xorScratch.count)
            out.append(contentsOf: xorScratch.bytes)
        }
    }

    private func varintSize(_ n: Int) -> Int {
        var v = UInt64(n)
        var size = 1
        while v >= 0x80 { v >>= 7; size += 1 }
        return size
    }
}

/// The distinct names of a batch, numbered in order of first use.
struct StringTable {
    private(set) var names: [String] = []
    private var indices: [String: Int] = [:]

    init() {}

    /// A table that starts with `names` (distinct, in this order).
    init(_ names: [String]) {
        indices.reserveCapacity(names.count)
        for name in names { _ = index(name) }
    }

    mutating func index(_ name: String) -> Int {
        if let i = indices[name] { return i }
        let i = names.count
        names.append(name)
        indices[name] = i
        return i
    }
}

extension ByteWriter {
    /// Writes a batch's tail (FORMAT.md) — the drop-ledger rows, their names as indices
    /// into the string table, then the CRC-32C of every byte before it — and returns the
    /// finished batch.
    mutating func finishBatch(drops: [DropRecord], names: [(Int, Int)]) -> [UInt8] {
        varint(drops.count)
        for (drop, names) in zip(drops, names) {
            varint(names.0)
            varint(names.1)
            zigzag(drop.from)
            zigzag(drop.to &- drop.from)
            zigzag(drop.count)
        }
        let crc = bytes.withUnsafeBytes { CRC32C.checksum($0) }
        littleEndian(UInt64(crc), count: 4)
        return bytes
    }
}
