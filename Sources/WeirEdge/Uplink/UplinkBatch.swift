import WeirCore

/// One request's worth: readings from whole chunks (or part of one chunk, after a 413
/// split) plus drop-ledger rows, under an idempotency key derived from what it holds, so
/// a retry is the same batch to the cloud.
struct UplinkBatch: Sendable {
    /// One chunk's share: its sequence number and how many of `readings` are its, in order.
    struct Part: Sendable {
        var seq: Int64
        var count: Int
    }

    var parts: [Part]
    /// The parts' readings, part after part: held once (the request body is encoded from
    /// this array as it is, not from a copy).
    var readings: [Reading]
    var drops: [StoredDrop]
    /// `gw-1:000000000005-000000000007r1234` (chunks and readings), plus `+d<first>-<last>` for drop rows and `/a`, `/b`
    /// for halves of a chunk split after a 413.
    var id: String

    init(gateway: String, parts: [Part], readings: [Reading], drops: [StoredDrop]) {
        self.init(parts: parts, readings: readings, drops: drops,
                  id: UplinkBatch.makeID(gateway: gateway, seqs: parts.map(\.seq), dropIDs: drops.map(\.id), readings: readings.count))
    }

    private init(parts: [Part], readings: [Reading], drops: [StoredDrop], id: String) {
        self.parts = parts
        self.readings = readings
        self.drops = drops
        self.id = id
    }

    var seqs: [Int64] { parts.map(\.seq) }
    var readingCount: Int { readings.count }

    func batch(gateway: String) -> Batch {
        Batch(gateway: gateway, id: id, readings: readings, drops: drops.map(\.record))
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
    func split(gateway: String) -> [UplinkBatch]? {
        if parts.count > 1 {
            let half = parts.count / 2
            let cut = parts[..<half].reduce(0) { $0 + $1.count }
            return [UplinkBatch(gateway: gateway, parts: Array(parts[..<half]), readings: Array(readings[..<cut]), drops: drops),
                    UplinkBatch(gateway: gateway, parts: Array(parts[half...]), readings: Array(readings[cut...]), drops: [])]
        }
        if let only = parts.first, readings.count > 1 {
            let half = readings.count / 2
            return [UplinkBatch(parts: [Part(seq: only.seq, count: half)], readings: Array(readings[..<half]), drops: drops, id: id + "/a"),
                    UplinkBatch(parts: [Part(seq: only.seq, count: readings.count - half)], readings: Array(readings[half...]), drops: [],
                                id: id + "/b")]
        }
        if parts.isEmpty && drops.count > 1 {
            let half = drops.count / 2
            return [UplinkBatch(gateway: gateway, parts: [], readings: [], drops: Array(drops[..<half])),
                    UplinkBatch(gateway: gateway, parts: [], readings: [], drops: Array(drops[half...]))]
        }
        return nil
    }
}
