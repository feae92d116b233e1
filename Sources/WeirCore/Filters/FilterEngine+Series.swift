extension FilterEngine {
    /// The series record for the reading's metric in `lastBlock`, created on first sight.
    @inline(__always)
    func seriesRecord(_ bits: StringBits, of reading: UnsafePointer<Reading>) -> Int {
        // Payloads of a device tend to list their metrics in the same order: the record
        // after the last match (or the device's first) is the likely one, compared by
        // its stored bits first (see `StringBits`).
        var record = nextGuess
        if record < 0 || load(record, as: StringBits.self) != bits {
            record = seriesRecordSlowly(reading.pointee.metric)
        }
        nextGuess = lastBlock &+ Int(load(record &+ RecordLayout.next, as: Int32.self))
        return record
    }

    /// The record of series `metric` of the last device, looked up by name or added.
    func seriesRecordSlowly(_ metric: String) -> Int {
        let block = lastBlock
        let count = int32(block + BlockLayout.seriesCount)
        if count > 16 {
            if let found = devices[lastSlot].lookup?[metric] { return block + Int(found) }
        } else {
            let bits = StringBits(metric)
            var record = block + seriesStart
            for _ in 0..<count {
                if load(record + RecordLayout.bits, as: StringBits.self) == bits { return record }
                record += int32(record + RecordLayout.recordBytes)
            }
            // By the characters: a long name, or a copy made apart.
            record = block + seriesStart
            for _ in 0..<count {
                if series[int32(record + RecordLayout.series)].metric == metric { return record }
                record += int32(record + RecordLayout.recordBytes)
            }
        }
        return addSeries(metric: metric)
    }

    /// Creates the series `metric` of the last device and its stages; returns its
    /// record (moving the device's block if it has no room).
    func addSeries(metric: String) -> Int {
        if int32(lastBlock + BlockLayout.seriesCount) >= maxMetricsPerDevice {
            // A device inventing metric names without end: forget its series (open
            // buckets are emitted first) and rebuild without them. Every device has been
            // touched (`tick` is at least 1 then), so none goes.
            for record in records(of: lastSlot) { closeAllBuckets(ofSeries: int32(record + RecordLayout.series)) }
            setInt32(0, at: lastBlock + BlockLayout.seriesCount)
            setInt32(seriesStart, at: lastBlock + BlockLayout.usedBytes)
            devices[lastSlot].lookup = nil
            rebuild(keepingTouchedAfter: 0)
        } else if garbageBytes > 1 << 12 && garbageBytes * 2 > arena.count * 8 {
            rebuild(keepingTouchedAfter: 0) // reclaim what moved blocks left behind
        }
        let slot = lastSlot
        let name = devices[slot].name
        let text = NameGlob.seriesText(device: name, metric: metric)
        // The stages: (packed kind and operation, the bucket of a downsample stage).
        var stages: [(packed: UInt32, bucket: Int)] = []
        var recordBytes = RecordLayout.headerBytes
        rules: for rule in rules.indices where globs[rule]?.matches(series: text) == true {
            for op in opsOfRule[rule] {
                let kind = params[op].kind
                var bucket = -1
                if case .downsample = ops[op] {
                    var state = BucketState(series: series.count, op: op)
                    if !emittedBeforeEviction.isEmpty,
                       let through = emittedBeforeEviction.removeValue(forKey: SeriesKey(device: name, metric: metric)) {
                        state.emittedAny = true
                        state.emittedThrough = through
                    }
                    bucket = buckets.count
                    buckets.append(state)
                }
                stages.append((StageLayout.pack(kind: kind, op: op), bucket))
                recordBytes += StageLayout.bytes(kind)
                if kind == .downsample { break rules } // downsample ends the chain
            }
        }
        let block = makeRoom(bytes: recordBytes, inBlockOf: slot)
        let record = block + int32(block + BlockLayout.usedBytes)
        store(StringBits(metric), at: record + RecordLayout.bits)
        setInt32(series.count, at: record + RecordLayout.series)
        setInt32(recordBytes, at: record + RecordLayout.recordBytes)
        setInt32(stages.count, at: record + RecordLayout.stageCount)
        // Linked after the block's last record, before its first.
        setInt32(seriesStart, at: record + RecordLayout.next)
        if int32(block + BlockLayout.seriesCount) > 0 {
            setInt32(record - block, at: block + int32(block + BlockLayout.lastRecord) + RecordLayout.next)
        }
        setInt32(record - block, at: block + BlockLayout.lastRecord)
        var at = record + RecordLayout.headerBytes
        for (packed, bucket) in stages {
            let kind = StageLayout.kind(packed)
            store(packed, at: at + StageLayout.packed)
            setInt32(bucket, at: at + StageLayout.aux)
            switch kind {
            case .dedup:
                store(DedupWindow(base: dedupPool.count, capacity: DedupWindow.initialCapacity), at: at + StageLayout.headerBytes)
                growPool(by: DedupWindow.initialCapacity)
            case .deadband:
                store(DeadbandState(), at: at + StageLayout.headerBytes)
            case .range, .rate, .downsample:
                break
            }
            at += StageLayout.bytes(kind)
        }
        setInt32(int32(block + BlockLayout.usedBytes) + recordBytes, at: block + BlockLayout.usedBytes)
        let count = int32(block + BlockLayout.seriesCount) + 1
        setInt32(count, at: block + BlockLayout.seriesCount)
        series.append(SeriesState(device: slot, metric: metric, record: record - block))
        if devices[slot].lookup != nil {
            devices[slot].lookup?[metric] = Int32(record - block)
        } else if count > 16 { // (as `seriesRecordSlowly` expects)
            // Past a few metrics a dictionary beats comparing names one by one.
            devices[slot].lookup = Dictionary(uniqueKeysWithValues: records(of: slot).map {
                (series[int32($0 + RecordLayout.series)].metric, Int32($0 - block))
            })
        }
        return record
    }
}

extension FilterEngine {
    /// A series' names and where its record is, for the paths that need the names.
    struct SeriesState: Sendable {
        var device: Int
        var metric: String
        /// Where the series' record is in its device's block (bytes from the block's start).
        var record: Int
    }
}
