/// Writes one batch in the format of `FORMAT.md`. Scratch buffers are reused across
/// series, so encoding allocates per batch and per series, never per reading.
struct BatchEncoder {
    private var out = ByteWriter(capacity: 0)
    private var xorScratch = ByteWriter(capacity: 0)
    private var times: [Int64] = []
    private var values: [Double] = []
    private var ints: [Int64] = []

    /// The byte before a value column: 0 is XOR; `scaledBase + d` is scaled decimal with `d` decimals.
    static let xorEncoding: UInt8 = 0
    static let scaledBase: UInt8 = 1
    /// The first ts of the previous series, which the next one is written against.
    private var previousFirstTime: Int64 = 0

    mutating func encode(_ batch: Batch) -> [UInt8] {
        let readings = batch.readings
        let grouping = SeriesGrouping(readings)
        out = ByteWriter(capacity: 64 + readings.count * 2 + grouping.keys.count * 24)

        out.bytes.append(contentsOf: BatchCodec.magic)
        out.byte(BatchCodec.version)
        out.byte(0) // flags, reserved
        out.string(batch.gateway)
        out.string(batch.id)

        // String table: device and metric names in order of first use.
        var strings = StringTable()
        var seriesNames: [(device: Int, metric: Int)] = []
        seriesNames.reserveCapacity(grouping.keys.count)
        for key in grouping.keys {
            seriesNames.append((strings.index(key.device), strings.index(key.metric)))
        }
        let dropNames = batch.drops.map { (strings.index($0.device), strings.index($0.metric)) }
        out.varint(strings.names.count)
        for name in strings.names { out.string(name) }

        out.varint(readings.count)
        out.varint(grouping.keys.count)
        readings.withUnsafeBufferPointer { rs in
            grouping.order.withUnsafeBufferPointer { order in
                for s in 0..<grouping.keys.count {
                    let lo = grouping.offsets[s]
                    let hi = grouping.offsets[s + 1]
                    out.varint(seriesNames[s].device)
                    out.varint(seriesNames[s].metric)
                    out.varint(hi - lo)
                    writeSeries(rs, order: UnsafeBufferPointer(rebasing: order[lo..<hi]))
                }
            }
        }

        out.varint(batch.drops.count)
        for (drop, names) in zip(batch.drops, dropNames) {
            out.varint(names.0)
            out.varint(names.1)
            out.zigzag(drop.from)
            out.zigzag(drop.to &- drop.from)
            out.zigzag(drop.count)
        }

        let crc = out.bytes.withUnsafeBytes { CRC32C.checksum($0) }
        out.littleEndian(UInt64(crc), count: 4)
        return out.bytes
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

    /// The byte before a ts column's packed part: delta-of-deltas or plain deltas.
    static let timesAsDeltaOfDeltas: UInt8 = 0
    static let timesAsDeltas: UInt8 = 1

    /// First ts (against the previous series' first ts), first delta, then delta-of-deltas
    /// or deltas bit-packed, whichever is smaller. Regular sampling makes both nearly free;
    /// with jitter, deltas are one bit a reading narrower (a dod spans twice the jitter).
    private mutating func writeTimes() {
        let n = times.count
        out.zigzag(times[0] &- previousFirstTime)
        previousFirstTime = times[0]
        guard n >= 2 else { return }
        var delta = times[1] &- times[0]
        out.zigzag(delta)
        guard n >= 3 else { return }
        ints.removeAll(keepingCapacity: true)
        ints.reserveCapacity(2 &* (n &- 2))
        for i in 2..<n {
            let d = times[i] &- times[i &- 1]
            ints.append(d &- delta)
            delta = d
        }
        for i in 2..<n { ints.append(times[i] &- times[i &- 1]) }
        ints.withUnsafeBufferPointer { all in
            let dods = UnsafeBufferPointer(rebasing: all[0..<(n &- 2)])
            let deltas = UnsafeBufferPointer(rebasing: all[(n &- 2)...])
            if IntBlockColumn.encodedSize(deltas) < IntBlockColumn.encodedSize(dods) {
                out.byte(BatchEncoder.timesAsDeltas)
                IntBlockColumn.write(deltas, into: &out)
            } else {
                out.byte(BatchEncoder.timesAsDeltaOfDeltas)
                IntBlockColumn.write(dods, into: &out)
            }
        }
    }

    /// Scaled decimals when they fit, XOR otherwise — whichever is smaller.
    private mutating func writeValues() {
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

    mutating func index(_ name: String) -> Int {
        if let i = indices[name] { return i }
        let i = names.count
        names.append(name)
        indices[name] = i
        return i
    }
}
