/// Several encoded batches re-encoded as one, without building a `Reading` for each of
/// their readings: the edge merges small chunks and sends several chunks per request
/// this way. Timestamps and value bits are held in two columns (16 bytes a reading),
/// names once each.
///
/// `encode` gives exactly the bytes `BatchCodec.encode` gives for a batch of every added
/// batch's readings, concatenated in the order they were added (each added batch's own
/// gateway, id and drops are not carried over).
///
/// ```swift
/// var merger = BatchMerger()
/// for chunk in chunks { _ = try merger.add(chunk) }
/// let bytes = merger.encode(gateway: "gw-1", id: "batch-7", drops: [])
/// ```
public struct BatchMerger {
    /// One series of one added batch: where its readings are in the columns.
    struct Entry {
        var device: Int32
        var metric: Int32
        var start: Int32
        var count: Int32
    }

    var names: [String] = []
    private var nameIDs: [String: Int32] = [:]
    /// `false` once a non-ASCII name was added: such names are kept spelling by spelling
    /// (not unified), and `encode` takes the general path.
    private var asciiOnly = true
    var entries: [Entry] = []
    var times: [Int64] = []
    var values: [Int64] = []

    /// `reservingReadings`: how many readings are expected in all (sizes the columns once).
    public init(reservingReadings: Int = 0) {
        times.reserveCapacity(reservingReadings)
        values.reserveCapacity(reservingReadings)
    }

    /// Readings added so far.
    public var readingCount: Int { times.count }

    /// The earliest and latest timestamp added (`nil` when there are no readings).
    public var timeRange: ClosedRange<Int64>? {
        guard var lo = times.first else { return nil }
        var hi = lo
        for t in times {
            if t < lo { lo = t }
            if t > hi { hi = t }
        }
        return lo...hi
    }

    /// Checks and adds one encoded batch; returns its reading count. When it throws
    /// (the same errors as `BatchCodec.decode`, or `.malformed` when `expecting` is given
    /// and the batch holds another number of readings), nothing of that batch was added.
    @discardableResult
    public mutating func add(_ bytes: [UInt8], expecting: Int? = nil) throws(BatchCodecError) -> Int {
        let before = (names: names.count, entries: entries.count, readings: times.count, ascii: asciiOnly)
        var sink = Sink(merger: self)
        self = BatchMerger()  // `sink` owns the storage while it appends (no copy)
        let result: Result<Void, BatchCodecError> = bytes.withUnsafeBytes { raw in
            do throws(BatchCodecError) {
                _ = try BatchDecoder.walk(raw, into: &sink)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        self = sink.merger
        var outcome = result
        if case .success = result, let expecting, times.count - before.readings != expecting {
            outcome = .failure(BatchCodecError(.malformed, at: 0,
                                               "the batch holds \(times.count - before.readings) readings, \(expecting) were expected"))
        }
        if case .failure(let error) = outcome {
            for name in names[before.names...] where nameIDs[name].map({ Int($0) >= before.names }) == true {
                nameIDs[name] = nil
            }
            names.removeSubrange(before.names...)
            entries.removeSubrange(before.entries...)
            times.removeSubrange(before.readings...)
            values.removeSubrange(before.readings...)
            asciiOnly = before.ascii
            throw error
        }
        return times.count - before.readings
    }

    /// The id of a name of the batch being added.
    mutating func id(_ name: String) -> Int32 {
        guard name.utf8.allSatisfy({ $0 < 0x80 }) else {
            // Kept as spelled: String equality is canonical equivalence, which the general
            // path of the encoder resolves exactly as it does for any batch.
            asciiOnly = false
            names.append(name)
            return Int32(names.count - 1)
        }
        if let i = nameIDs[name] { return i }
        names.append(name)
        nameIDs[name] = Int32(names.count - 1)
        return Int32(names.count - 1)
    }

    /// The encoding of one batch of every added reading, in the order added.
    public func encode(gateway: String, id: String, drops: [DropRecord]) -> [UInt8] {
        var encoder = BatchEncoder()
        if asciiOnly, let bytes = encoder.encodeMerged(self, gateway: gateway, id: id, drops: drops) {
            return bytes
        }
        return BatchCodec.encode(Batch(gateway: gateway, id: id, readings: readings(), drops: drops))
    }

    /// Every added reading, in the order added (the general path).
    func readings() -> [Reading] {
        var out: [Reading] = []
        out.reserveCapacity(times.count)
        for e in entries {
            let d = names[Int(e.device)]
            let m = names[Int(e.metric)]
            for i in Int(e.start)..<Int(e.start + e.count) {
                out.append(Reading(device: d, metric: m, ts: times[i], value: Double(bitPattern: UInt64(bitPattern: values[i]))))
            }
        }
        return out
    }

    /// Appends what `BatchDecoder.walk` reads to the merger's columns.
    private struct Sink: BatchSink {
        var merger: BatchMerger
        /// The batch's string-table indices → name ids.
        var ids: [Int32] = []

        mutating func begin(gateway: String, id: String, names: [String], readingCount: Int, reserve: Int) {
            ids = names.map { merger.id($0) }
            let want = merger.times.count + readingCount
            if merger.times.capacity < want {
                // Grow geometrically: adding many batches must not copy the columns each time.
                let grown = max(want, merger.times.capacity * 2)
                merger.times.reserveCapacity(grown)
                merger.values.reserveCapacity(grown)
            }
        }

        mutating func series(device: Int, metric: Int, times: UnsafePointer<Int64>, values: UnsafePointer<Int64>, count: Int) {
            merger.entries.append(Entry(device: ids[device], metric: ids[metric],
                                        start: Int32(truncatingIfNeeded: merger.times.count), count: Int32(truncatingIfNeeded: count)))
            merger.times.append(contentsOf: UnsafeBufferPointer(start: times, count: count))
            merger.values.append(contentsOf: UnsafeBufferPointer(start: values, count: count))
        }
    }
}

extension BatchEncoder {
    /// `BatchMerger.encode` for ASCII names: entries sorted by packed
    /// `(device rank, metric rank, entry)` keys give the same series order, and the same
    /// order of readings within a series, as grouping the concatenated readings. `nil`
    /// when the counts do not fit the keys (the caller takes the general path).
    mutating func encodeMerged(_ m: BatchMerger, gateway: String, id: String, drops: [DropRecord]) -> [UInt8]? {
        let total = m.times.count
        guard total < Int(Int32.max) else { return nil }
        let e = m.entries.count
        var bits = 1
        while (1 << bits) <= max(e, m.names.count) { bits += 1 }
        guard 3 * bits <= 64 else { return nil }
        let b = UInt64(bits)
        let mask: UInt64 = (1 << b) - 1

        let sortedNames = m.names.indices.sorted { m.names[$0] < m.names[$1] }
        var rank = [Int](repeating: 0, count: m.names.count)
        for (r, i) in sortedNames.enumerated() { rank[i] = r }
        var keys = [UInt64](repeating: 0, count: e)
        for i in 0..<e {
            let entry = m.entries[i]
            keys[i] = UInt64(rank[Int(entry.device)]) << (2 * b) | UInt64(rank[Int(entry.metric)]) << b | UInt64(i)
        }
        keys.sort()

        // Series count and the string table (names in order of first use, then the drops').
        var tableIndex = [Int32](repeating: -1, count: m.names.count)
        var table: [String] = []
        var seriesCount = 0
        var previous = UInt64.max
        for k in keys where k >> b != previous {
            previous = k >> b
            seriesCount += 1
            let entry = m.entries[Int(k & mask)]
            for name in [Int(entry.device), Int(entry.metric)] where tableIndex[name] < 0 {
                tableIndex[name] = Int32(table.count)
                table.append(m.names[name])
            }
        }
        var dropNames: [(Int, Int)] = []
        if !drops.isEmpty {
            var strings = StringTable(table)
            dropNames = drops.map { (strings.index($0.device), strings.index($0.metric)) }
            table = strings.names
        }

        out = ByteWriter(capacity: 64 + total * 2 + seriesCount * 24)
        out.bytes.append(contentsOf: BatchCodec.magic)
        out.byte(BatchCodec.version)
        out.byte(0) // flags, reserved
        out.string(gateway)
        out.string(id)
        out.varint(table.count)
        for name in table { out.string(name) }
        out.varint(total)
        out.varint(seriesCount)

        var start = 0
        while start < e {
            let series = keys[start] >> b
            var end = start + 1
            while end < e && keys[end] >> b == series { end += 1 }
            let first = m.entries[Int(keys[start] & mask)]
            var n = 0
            for j in start..<end { n += Int(m.entries[Int(keys[j] & mask)].count) }
            out.varint(Int(tableIndex[Int(first.device)]))
            out.varint(Int(tableIndex[Int(first.metric)]))
            out.varint(n)
            times.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            times.reserveCapacity(n)
            values.reserveCapacity(n)
            for j in start..<end {
                let entry = m.entries[Int(keys[j] & mask)]
                for i in Int(entry.start)..<Int(entry.start + entry.count) {
                    times.append(m.times[i])
                    values.append(Double(bitPattern: UInt64(bitPattern: m.values[i])))
                }
            }
            writeTimes()
            writeValues()
            start = end
        }

        return out.finishBatch(drops: drops, names: dropNames)
    }
}
