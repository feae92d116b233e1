extension FilterEngine {
    /// The aggregates of buckets that are complete: those a later bucket of their series
    /// has started, and those whose end `now` has reached.
    func flushDue(now: Int64) -> [Reading] {
        if openBuckets > 0 && now >= nextBucketEnd {
            var earliest = Int64.max
            for b in buckets.indices where buckets[b].open {
                let end = bucketEnd(b)
                if now >= end {
                    closeBucket(b)
                } else if end < earliest {
                    earliest = end
                }
            }
            nextBucketEnd = earliest
        }
        return takeReady()
    }

    /// Every held bucket's aggregate, complete or not.
    func flushAll() -> [Reading] {
        if openBuckets > 0 {
            for b in buckets.indices where buckets[b].open { closeBucket(b) }
            nextBucketEnd = .max
        }
        return takeReady()
    }

    func takeReady() -> [Reading] {
        if ready.isEmpty { return [] }
        let out = ready
        ready.removeAll()
        return out
    }

    func bucketSpec(_ b: Int) -> (bucketMs: Int64, aggregate: DownsampleSpec.Aggregate) {
        if case .downsample(let bucketMs, let aggregate) = ops[buckets[b].op] { return (bucketMs, aggregate) }
        return (1, .mean) // not reached: buckets belong to downsample stages only
    }

    func bucketEnd(_ b: Int) -> Int64 {
        let (end, overflow) = buckets[b].start.addingReportingOverflow(bucketSpec(b).bucketMs)
        return overflow ? .max : end
    }

    @inline(__always)
    func downsample(ts: Int64, value: Double, bucket b: Int, bucketMs: Int64) -> FilterResults.Outcome {
        // The usual case without a division: a time inside the open bucket (which starts
        // after anything emitted, so the checks of `downsampleSlowly` would let it in).
        // Updated in place: a bucket is two cache lines, and copying it out and back costs.
        checkBounds(b >= 0 && b < buckets.count, "bucket \(b) out of 0..<\(buckets.count)")
        let open = buckets.base + b // Safe: `b` is this stage's bucket (kept current by rebuilds), checked above.
        let (offset, overflow) = ts.subtractingReportingOverflow(open.pointee.start)
        if open.pointee.open && !overflow && offset >= 0 && offset < bucketMs {
            open.pointee.aggregate.add(ts: ts, value: value)
            open.pointee.scaledSum += value * 0x1p-64
            return .held
        }
        return downsampleSlowly(ts: ts, value: value, bucket: b, bucketMs: bucketMs)
    }

    func downsampleSlowly(ts: Int64, value: Double, bucket b: Int, bucketMs: Int64) -> FilterResults.Outcome {
        // A time so close to the start of Int64 that its bucket start does not exist (only
        // a broken clock writes it; the clock policy normally rejects it first).
        guard ts >= Int64.min + bucketMs else { return .dropped(.downsample) }
        var bucket = buckets[b]
        let start = WindowMath.start(of: ts, size: bucketMs)
        if bucket.emittedAny && start <= bucket.emittedThrough { return .dropped(.downsample) }
        if bucket.open {
            if start == bucket.start {
                bucket.aggregate.add(ts: ts, value: value)
                bucket.scaledSum += value * 0x1p-64
                buckets[b] = bucket
                return .held
            }
            if start < bucket.start { return .dropped(.downsample) }
            closeBucket(b)
            bucket = buckets[b]
        }
        bucket.start = start
        bucket.aggregate = WindowAggregate(ts: ts, value: value)
        bucket.scaledSum = value * 0x1p-64
        bucket.open = true
        buckets[b] = bucket
        openBuckets += 1
        let end = bucketEnd(b)
        if end < nextBucketEnd { nextBucketEnd = end }
        return .held
    }

    func closeBucket(_ b: Int) {
        guard buckets[b].open else { return }
        let a = buckets[b].aggregate
        let value: Double
        switch bucketSpec(b).aggregate {
        case .mean:
            // A sum of huge finite values can overflow; the scaled sum cannot.
            value = a.mean.isFinite ? a.mean
                : Swift.min(.greatestFiniteMagnitude, Swift.max(-.greatestFiniteMagnitude, buckets[b].scaledSum / Double(a.count) * 0x1p64))
        case .min: value = a.min
        case .max: value = a.max
        case .last: value = a.lastValue
        }
        let s = buckets[b].series
        ready.append(Reading(device: devices[series[s].device].name, metric: series[s].metric, ts: buckets[b].start, value: value))
        buckets[b].open = false
        buckets[b].emittedAny = true
        buckets[b].emittedThrough = buckets[b].start
        openBuckets -= 1
    }

    func rememberEmitted(ofSeries s: Int) {
        for (kind, at) in stagesOf(series: s) where kind == .downsample {
            let b = int32(at + StageLayout.aux)
            guard buckets[b].emittedAny else { continue }
            if emittedBeforeEviction.count >= maxDevices * 4 { emittedBeforeEviction.removeAll() }
            emittedBeforeEviction[SeriesKey(device: devices[series[s].device].name, metric: series[s].metric)] = buckets[b].emittedThrough
        }
    }

    func closeAllBuckets(ofSeries s: Int) {
        for (kind, at) in stagesOf(series: s) where kind == .downsample {
            closeBucket(int32(at + StageLayout.aux))
        }
    }
}

extension FilterEngine {
    /// A downsample stage's open (or last emitted) bucket, in `FilterEngine.buckets`,
    /// which `flushDue` scans.
    struct BucketState: Sendable {
        /// The series and the downsample operation this bucket belongs to.
        var series: Int
        var op: Int
        var open = false
        var start: Int64 = 0
        var aggregate = WindowAggregate(ts: 0, value: 0)
        /// The sum times 2^-64, for a mean when the plain sum overflows.
        var scaledSum = 0.0
        var emittedAny = false
        var emittedThrough: Int64 = 0
    }
}
