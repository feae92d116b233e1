import Foundation
import GRDB
import WeirCompression
import WeirCore
import WeirSupport

/// What one seal commits: accepted readings (become one chunk), dead letters, and counter
/// increments, all in one transaction.
public struct SealInput: Sendable {
    public var readings: [Reading] = []
    public var deadLetters: [DeadLetter] = []
    public var counters: [String: Int64] = [:]
    /// Per device: readings the filters removed (by reason: `range`, `dedup`, `deadband`,
    /// `rate_limit`, `downsample`), bad timestamps (`bad_timestamp`, `clock_replaced`) and
    /// readings that came without a time (`stamped_receive_time`).
    public var deviceCounters: [String: [String: Int64]] = [:]
    public init(readings: [Reading] = [], deadLetters: [DeadLetter] = [], counters: [String: Int64] = [:],
                deviceCounters: [String: [String: Int64]] = [:]) {
        self.readings = readings
        self.deadLetters = deadLetters
        self.counters = counters
        self.deviceCounters = deviceCounters
    }
    public var isEmpty: Bool { readings.isEmpty && deadLetters.isEmpty && counters.isEmpty && deviceCounters.isEmpty }

    /// Adds one to `device`'s counter `name`.
    mutating func count(_ name: String, device: String) {
        deviceCounters[device, default: [:]][name, default: 0] += 1
    }

    /// Adds `other`'s counters to these.
    mutating func addCounters(of other: SealInput) {
        for (k, v) in other.counters { counters[k, default: 0] += v }
        for (device, names) in other.deviceCounters {
            for (name, v) in names { deviceCounters[device, default: [:]][name, default: 0] += v }
        }
    }
}

/// The buffer's limits (`buffer.max_bytes`, `buffer.max_age`, `dead_letters.max_rows`:
/// rows kept of each kind, dead letters and clock notes; `buffer.chunk_max_readings`).
public struct BufferCaps: Sendable {
    public var maxBytes: Int64
    public var maxAgeMs: Int64
    public var maxDeadLetters: Int
    /// Most readings a sealed chunk holds: a seal of more writes several chunks.
    public var maxChunkReadings: Int
    public init(maxBytes: Int64, maxAgeMs: Int64, maxDeadLetters: Int, maxChunkReadings: Int = .max) {
        self.maxBytes = maxBytes
        self.maxAgeMs = maxAgeMs
        self.maxDeadLetters = maxDeadLetters
        self.maxChunkReadings = max(1, maxChunkReadings)
    }
}

/// What a seal did.
public struct SealOutcome: Sendable {
    /// The last new chunk's sequence number (`nil` when there were no readings).
    public var seq: Int64?
    /// How many chunks it wrote.
    public var chunks: Int
    public var bytes: Int
    /// Readings the caps evicted (recorded in the drop ledger).
    public var evictedReadings: Int64
    public var evictedChunks: Int
}

extension EdgeBuffer {
    /// Encodes `input.readings` as chunks (the wire codec) of at most
    /// `caps.maxChunkReadings` readings, in order, and commits them with the dead letters
    /// and counters in one transaction; then enforces the caps, evicting the oldest chunks
    /// (not those in `inFlight`) into the drop ledger.
    @discardableResult
    public func seal(_ input: SealInput, caps: BufferCaps, inFlight: Set<Int64> = [], now: Int64 = WallClock.nowMs()) throws -> SealOutcome {
        var chunks: [(body: [UInt8], readings: Int, minTs: Int64, maxTs: Int64)] = []
        var start = 0
        while start < input.readings.count {
            let end = input.readings.count - start > caps.maxChunkReadings ? start + caps.maxChunkReadings : input.readings.count
            let readings = start == 0 && end == input.readings.count ? input.readings : Array(input.readings[start..<end])
            var minTs = Int64.max
            var maxTs = Int64.min
            for r in readings {
                if r.ts < minTs { minTs = r.ts }
                if r.ts > maxTs { maxTs = r.ts }
            }
            chunks.append((try WireBatch.encode(Batch(gateway: gateway, id: "chunk", readings: readings)), readings.count, minTs, maxTs))
            start = end
        }
        let outcome: SealOutcome = try pool.write { db in
            var seq: Int64?
            var bytes = 0
            for chunk in chunks {
                try db.execute(sql: "INSERT INTO chunks (sealed_at, readings, bytes, min_ts, max_ts, body) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [now, chunk.readings, chunk.body.count, chunk.minTs, chunk.maxTs, Data(chunk.body)])
                seq = db.lastInsertedRowID
                bytes += chunk.body.count
            }
            if !input.deadLetters.isEmpty {
                let statement = try db.cachedStatement(sql: "INSERT INTO dead_letters (at, topic, payload, reason, kind) VALUES (?, ?, ?, ?, ?)")
                var kinds = Set<DeadLetter.Kind>()
                for d in input.deadLetters {
                    try statement.execute(arguments: [d.at, d.topic, Data(d.payload), String(d.reason.prefix(2000)), d.kind.rawValue])
                    kinds.insert(d.kind)
                }
                // Each kind keeps its newest `maxDeadLetters` rows, so a flood of clock
                // notes cannot push out the dead letters (the lost data) and vice versa.
                for kind in kinds {
                    if caps.maxDeadLetters <= 0 {
                        try db.execute(sql: "DELETE FROM dead_letters WHERE kind = ?", arguments: [kind.rawValue])
                        continue
                    }
                    try db.execute(sql: """
                        DELETE FROM dead_letters WHERE kind = ? AND id <
                            (SELECT id FROM dead_letters WHERE kind = ? ORDER BY id DESC LIMIT 1 OFFSET ?)
                        """, arguments: [kind.rawValue, kind.rawValue, caps.maxDeadLetters - 1])
                }
            }
            try Self.addCounters(db, input.counters)
            try Self.addDeviceCounters(db, input.deviceCounters)
            var outcome = SealOutcome(seq: seq, chunks: chunks.count, bytes: bytes, evictedReadings: 0, evictedChunks: 0)
            if bytes > 0 { adjustBytes(Int64(bytes)) }
            try enforceCaps(db, caps: caps, inFlight: inFlight, now: now, outcome: &outcome)
            return outcome
        }
        return outcome
    }

    static func addCounters(_ db: Database, _ counters: [String: Int64]) throws {
        guard !counters.isEmpty else { return }
        let statement = try db.cachedStatement(sql: "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")
        for (name, value) in counters where value != 0 {
            try statement.execute(arguments: [name, value])
        }
    }

    static func addDeviceCounters(_ db: Database, _ counters: [String: [String: Int64]]) throws {
        guard !counters.isEmpty else { return }
        let statement = try db.cachedStatement(sql: """
            INSERT INTO device_counters (device, name, value) VALUES (?, ?, ?)
            ON CONFLICT(device, name) DO UPDATE SET value = value + excluded.value
            """)
        for (device, names) in counters {
            for (name, value) in names where value != 0 {
                try statement.execute(arguments: [device, name, value])
            }
        }
    }

    /// Evicts the oldest chunks while over `maxBytes` or older than `maxAgeMs`, writing one
    /// drop-ledger row per series of each evicted chunk.
    private func enforceCaps(_ db: Database, caps: BufferCaps, inFlight: Set<Int64>, now: Int64, outcome: inout SealOutcome) throws {
        let ageLimit = now - caps.maxAgeMs
        while true {
            let overBytes = bufferedBytes > caps.maxBytes
            let rows = try Row.fetchAll(db, sql: "SELECT seq, sealed_at, readings, bytes, body FROM chunks ORDER BY seq LIMIT ?",
                                        arguments: [inFlight.count + 1])
            guard let row = rows.first(where: { !inFlight.contains($0["seq"] as Int64) }) else { return }
            let sealedAt: Int64 = row["sealed_at"]
            guard overBytes || sealedAt < ageLimit else { return }
            let seq: Int64 = row["seq"]
            let bytes: Int64 = row["bytes"]
            let readings: Int64 = row["readings"]
            let body: [UInt8] = Array(row["body"] as Data)
            do {
                let batch = try WireBatch.decode(body, maxSize: EdgeBuffer.maxChunkDecodedBytes)
                try Self.recordDrops(db, readings: batch.readings, now: now)
                try db.execute(sql: "DELETE FROM chunks WHERE seq = ?", arguments: [seq])
                try Self.addCounters(db, ["evicted_readings": readings, "evicted_chunks": 1])
                outcome.evictedReadings += readings
                outcome.evictedChunks += 1
            } catch {
                // Cannot say what it held: keep it, out of the queue, for inspection.
                try Self.moveToQuarantine(db, seq: seq, reason: "evicting: \(error)", now: now)
            }
            adjustBytes(-bytes)
        }
    }

    /// Drop-ledger rows for `readings`: one per series with its time range and count.
    static func recordDrops(_ db: Database, readings: [Reading], now: Int64) throws {
        var ranges: [SeriesKey: (from: Int64, to: Int64, count: Int64)] = [:]
        for r in readings {
            if let e = ranges[r.series] {
                ranges[r.series] = (min(e.from, r.ts), max(e.to, r.ts), e.count + 1)
            } else {
                ranges[r.series] = (r.ts, r.ts, 1)
            }
        }
        let statement = try db.cachedStatement(sql: "INSERT INTO drops (device, metric, from_ts, to_ts, count, recorded_at) VALUES (?, ?, ?, ?, ?, ?)")
        for (key, e) in ranges.sorted(by: { $0.key < $1.key }) {
            try statement.execute(arguments: [key.device, key.metric, e.from, e.to, e.count, now])
        }
    }

    static func moveToQuarantine(_ db: Database, seq: Int64, reason: String, now: Int64) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO quarantine (seq, sealed_at, readings, bytes, reason, quarantined_at, body)
            SELECT seq, sealed_at, readings, bytes, ?, ?, body FROM chunks WHERE seq = ?
            """, arguments: [String(reason.prefix(2000)), now, seq])
        try db.execute(sql: "DELETE FROM chunks WHERE seq = ?", arguments: [seq])
        try addCounters(db, ["quarantined_chunks": 1])
    }

    /// The largest decoded chunk accepted (a damaged length must not allocate gigabytes).
    static let maxChunkDecodedBytes = 256 << 20
}
