import WeirCompression
import WeirCore

/// One request's worth: whole chunks (or part of one chunk, after a 413 split) plus
/// drop-ledger rows, under an idempotency key derived from what it holds, so a retry is
/// the same batch to the cloud.
///
/// It holds the chunks as stored (compressed) and the request body, not their readings:
/// a 50,000-reading batch is a few hundred kilobytes while it waits for the cloud.
struct UplinkBatch: Sendable, Equatable {
    /// One chunk's share: its sequence number and how many readings of the batch are its.
    struct Part: Sendable, Equatable {
        var seq: Int64
        var count: Int
    }

    var parts: [Part]
    /// The parts' chunk bodies as stored (wire form); empty for a half of a split chunk.
    var chunkBodies: [[UInt8]]
    /// The readings of a half of a split chunk (`nil` otherwise).
    var readings: [Reading]?
    var drops: [StoredDrop]
    /// `gw-1:000000000005-000000000007r1234` (chunks and readings), plus `+d<first>-<last>` for drop rows and `/a`, `/b`
    /// for halves of a chunk split after a 413.
    var id: String
    /// The binary request body, when already encoded (`wire` encodes it otherwise).
    var wireBody: [UInt8]?

    init(gateway: String, parts: [Part], chunkBodies: [[UInt8]], drops: [StoredDrop]) {
        self.init(parts: parts, chunkBodies: chunkBodies, readings: nil, drops: drops,
                  id: UplinkBatch.makeID(gateway: gateway, seqs: parts.map(\.seq), dropIDs: drops.map(\.id),
                                         readings: parts.reduce(0) { $0 + $1.count }))
    }

    private init(parts: [Part], chunkBodies: [[UInt8]], readings: [Reading]?, drops: [StoredDrop], id: String) {
        self.parts = parts
        self.chunkBodies = chunkBodies
        self.readings = readings
        self.drops = drops
        self.id = id
    }

    var seqs: [Int64] { parts.map(\.seq) }
    var readingCount: Int { parts.reduce(0) { $0 + $1.count } }

    /// The body for `application/vnd.weir.batch`: the chunks merged as columns (no
    /// `Reading` per reading), the batch id and drop rows, compressed.
    func wire(gateway: String) throws -> [UInt8] {
        if let wireBody { return wireBody }
        if let readings {
            return try WireBatch.encode(Batch(gateway: gateway, id: id, readings: readings, drops: drops.map(\.record)))
        }
        var merger = BatchMerger(reservingReadings: readingCount)
        for (body, part) in zip(chunkBodies, parts) {
            try merger.add(WireBatch.unwrap(body, maxSize: EdgeBuffer.maxChunkDecodedBytes), expecting: part.count)
        }
        let raw = merger.encode(gateway: gateway, id: id, drops: drops.map(\.record))
        _ = consume merger  // freed before zstd allocates its tables
        return try WireBatch.wrap(raw)
    }

    /// The whole batch with its readings (the JSON body, and splitting one chunk).
    func batch(gateway: String) throws -> Batch {
        var all = readings ?? []
        if readings == nil {
            all.reserveCapacity(readingCount)
            for body in chunkBodies {
                all.append(contentsOf: try WireBatch.decode(body, maxSize: EdgeBuffer.maxChunkDecodedBytes).readings)
            }
        }
        return Batch(gateway: gateway, id: id, readings: all, drops: drops.map(\.record))
    }

    /// The same chunks, drop rows and reading count give the same id (a retry, also after
    /// a restart, is the same batch to the cloud, which deduplicates drop rows by it); a
    /// chunk that was compacted holds more readings, so its id changes with it.
    static func makeID(gateway: String, seqs: [Int64], dropIDs: [Int64], readings: Int) -> String {
        func pad(_ n: Int64) -> String {
            let s = String(n)
            return s.count >= 12 ? s : String(repeating: "0", count: 12 - s.count) + s
        }
        var id = "\(gateway):"
        if let lo = seqs.min(), let hi = seqs.max() {
            id += lo == hi ? pad(lo) : "\(pad(lo))-\(pad(hi))"
            if seqs.count != Int(hi - lo + 1) { id += "n\(seqs.count)" }
        } else {
            id += "drops"
        }
        if !seqs.isEmpty { id += "r\(readings)" }
        if let lo = dropIDs.min(), let hi = dropIDs.max() {
            id += "+d\(lo)-\(hi)"
            if dropIDs.count != Int(hi - lo + 1) { id += "n\(dropIDs.count)" }
        }
        return id
    }

    /// Two smaller batches: by chunk when it holds several, else the one chunk's readings
    /// in halves. `nil` when it cannot get smaller.
    func split(gateway: String) throws -> [UplinkBatch]? {
        if parts.count > 1 {
            let half = parts.count / 2
            return [UplinkBatch(gateway: gateway, parts: Array(parts[..<half]), chunkBodies: Array(chunkBodies[..<half]), drops: drops),
                    UplinkBatch(gateway: gateway, parts: Array(parts[half...]), chunkBodies: Array(chunkBodies[half...]), drops: [])]
        }
        if let only = parts.first, only.count > 1 {
            let all = try readings ?? batch(gateway: gateway).readings
            let half = all.count / 2
            return [UplinkBatch(parts: [Part(seq: only.seq, count: half)], chunkBodies: [], readings: Array(all[..<half]), drops: drops,
                                id: id + "/a"),
                    UplinkBatch(parts: [Part(seq: only.seq, count: all.count - half)], chunkBodies: [], readings: Array(all[half...]), drops: [],
                                id: id + "/b")]
        }
        if parts.isEmpty && drops.count > 1 {
            let half = drops.count / 2
            return [UplinkBatch(gateway: gateway, parts: [], chunkBodies: [], drops: Array(drops[..<half])),
                    UplinkBatch(gateway: gateway, parts: [], chunkBodies: [], drops: Array(drops[half...]))]
        }
        return nil
    }
}
