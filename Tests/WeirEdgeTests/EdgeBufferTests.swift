import Foundation
import GRDB
import Testing
import WeirCompression
import WeirCore
import WeirEdge
import WeirTestSupport

@Suite("weir-edge SQLite buffer")
struct EdgeBufferTests {
    static let caps = BufferCaps(maxBytes: 1 << 30, maxAgeMs: 7 * 86_400_000, maxDeadLetters: 100)

    static func readings(_ range: Range<Int>, device: String = "d1") -> [Reading] {
        range.map { Reading(device: device, metric: "temp", ts: 1_732_540_000_000 + Int64($0) * 1000, value: Double($0) / 10) }
    }

    @Test("a seal of more than chunk_max_readings writes chunks of at most that many, in order, with the counters and dead letters once")
    func sealCutsChunksAtTheirMaximum() async throws {
        try await withTemporaryDirectory { dir in
            let buffer = try EdgeBuffer.open(path: dir.file("b.db"), gateway: "gw-1")
            var caps = Self.caps
            caps.maxChunkReadings = 10
            let dead = DeadLetter(at: 1, topic: "t", payload: Array("x".utf8), reason: "bad")
            let outcome = try buffer.seal(SealInput(readings: Self.readings(0..<25), deadLetters: [dead], counters: ["accepted_readings": 25]),
                                          caps: caps)
            #expect(outcome.chunks == 3)
            let chunks = try buffer.nextChunks(replay: .oldestFirst, maxBytes: 1 << 20, maxReadings: 1000)
            #expect(chunks.map(\.readings) == [10, 10, 5])
            #expect(outcome.seq == chunks.last?.seq)
            #expect(outcome.bytes == chunks.reduce(0) { $0 + $1.body.count })
            let decoded = try chunks.flatMap { try WireBatch.decode($0.body, maxSize: 1 << 20).readings }
            #expect(decoded == Self.readings(0..<25))
            let status = try buffer.status()
            #expect(status.readings == 25)
            #expect(status.counters["accepted_readings"] == 25)
            #expect(status.deadLetterRows == 1)
            // Exactly at the maximum: one chunk.
            #expect(try buffer.seal(SealInput(readings: Self.readings(25..<35)), caps: caps).chunks == 1)
        }
    }

    @Test("sealed chunks come back in sequence order, survive reopening, and go only when forwarded")
    func sealForwardReopen() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.file("b.db")
            do {
                let buffer = try EdgeBuffer.open(path: path, gateway: "gw-1")
                let a = try buffer.seal(SealInput(readings: Self.readings(0..<100), counters: ["accepted_readings": 100]), caps: Self.caps)
                let b = try buffer.seal(SealInput(readings: Self.readings(100..<150)), caps: Self.caps)
                #expect(a.seq! < b.seq!)
            }
            let buffer = try EdgeBuffer.open(path: path, gateway: "gw-1")
            let chunks = try buffer.nextChunks(replay: .oldestFirst, maxBytes: 1 << 20, maxReadings: 1000)
            #expect(chunks.map(\.readings) == [100, 50])
            let decoded = try WireBatch.decode(chunks[0].body, maxSize: 1 << 20)
            #expect(decoded.readings == Self.readings(0..<100))
            let newestFirst = try buffer.nextChunks(replay: .liveFirst, maxBytes: 1 << 20, maxReadings: 1000)
            #expect(newestFirst.map(\.readings) == [50, 100])
            // The readings cap keeps a request small (but always at least one chunk).
            #expect(try buffer.nextChunks(replay: .oldestFirst, maxBytes: 1 << 20, maxReadings: 120).count == 1)
            try buffer.markForwarded(seqs: [chunks[0].seq], dropIDs: [], readings: 100)
            let status = try buffer.status()
            #expect(status.chunks == 1)
            #expect(status.readings == 50)
            #expect(status.counters["forwarded_readings"] == 100)
            #expect(status.counters["accepted_readings"] == 100)
        }
    }

    @Test("past max_bytes the oldest chunks are evicted into the drop ledger, per series with exact ranges")
    func evictionWritesLedger() async throws {
        try await withTemporaryDirectory { dir in
            let buffer = try EdgeBuffer.open(path: dir.file("b.db"), gateway: "gw-1")
            var caps = Self.caps
            caps.maxBytes = 1  // every older chunk must go as soon as a new one arrives
            try buffer.seal(SealInput(readings: Self.readings(0..<10, device: "a") + Self.readings(0..<5, device: "b")), caps: caps)
            let first = try buffer.status()
            #expect(first.chunks == 0, "the only chunk is over the cap too")
            let drops = try buffer.pendingDrops(limit: 10).map(\.record)
            #expect(drops == [
                DropRecord(device: "a", metric: "temp", from: 1_732_540_000_000, to: 1_732_540_009_000, count: 10),
                DropRecord(device: "b", metric: "temp", from: 1_732_540_000_000, to: 1_732_540_004_000, count: 5),
            ])
            #expect(first.counters["evicted_readings"] == 15)
        }
    }

    @Test("a chunk being sent is never evicted")
    func inFlightIsKept() async throws {
        try await withTemporaryDirectory { dir in
            let buffer = try EdgeBuffer.open(path: dir.file("b.db"), gateway: "gw-1")
            let a = try buffer.seal(SealInput(readings: Self.readings(0..<10)), caps: Self.caps)
            var caps = Self.caps
            caps.maxBytes = 1
            try buffer.seal(SealInput(readings: Self.readings(10..<20)), caps: caps, inFlight: [a.seq!])
            let left = try buffer.nextChunks(replay: .oldestFirst, maxBytes: 1 << 20, maxReadings: 1000)
            #expect(left.map(\.seq) == [a.seq!])
            #expect(try buffer.status().counters["evicted_readings"] == 10)
        }
    }

    @Test("dead letters keep topic, reason and at most 4 KiB of payload, capped in rows but not in the count")
    func deadLettersCapped() async throws {
        try await withTemporaryDirectory { dir in
            let buffer = try EdgeBuffer.open(path: dir.file("b.db"), gateway: "gw-1")
            var caps = Self.caps
            caps.maxDeadLetters = 3
            let big = [UInt8](repeating: UInt8(ascii: "x"), count: 10_000)
            let letters = (0..<5).map { DeadLetter(at: Int64($0), topic: "t/\($0)", payload: big, reason: "bad \($0)") }
            try buffer.seal(SealInput(deadLetters: letters, counters: ["dead_letters": 5]), caps: caps)
            let kept = try buffer.deadLetters(limit: 10)
            #expect(kept.map(\.topic) == ["t/4", "t/3", "t/2"])
            #expect(kept.allSatisfy { $0.payload.count == 4096 })
            #expect(try buffer.status().counters["dead_letters"] == 5)
        }
    }

    @Test("clock notes share the table but not the count: dead letters kept never exceed their total, each kind capped on its own")
    func clockNotesApartFromDeadLetters() async throws {
        try await withTemporaryDirectory { dir in
            let buffer = try EdgeBuffer.open(path: dir.file("b.db"), gateway: "gw-1")
            var caps = Self.caps
            caps.maxDeadLetters = 3
            func letter(_ i: Int) -> DeadLetter { DeadLetter(at: Int64(i), topic: "t/\(i)", payload: [1], reason: "bad \(i)") }
            func note(_ i: Int) -> DeadLetter {
                DeadLetter(at: Int64(i), topic: "n/\(i)", payload: [2], reason: "replaced: d/m: timestamp \(i)", kind: .clockNote)
            }
            // Interleaved: 2 dead letters, 2 notes.
            try buffer.seal(SealInput(deadLetters: [letter(0), note(1), letter(2), note(3)],
                                      counters: ["dead_letters": 2, "clock_replaced": 2]), caps: caps)
            var status = try buffer.status()
            #expect(status.deadLetterRows == 2)
            #expect(status.clockNoteRows == 2)
            #expect(status.text.contains("dead letters:         2 total, 2 kept"), "\(status.text)")
            #expect(status.text.contains("clock notes:          2 total, 2 kept"), "\(status.text)")
            #expect(try buffer.deadLetters(limit: 10).map(\.kind) == [.clockNote, .deadLetter, .clockNote, .deadLetter])

            // A flood of notes: the dead letters stay; the notes keep their newest 3.
            try buffer.seal(SealInput(deadLetters: (10..<20).map(note), counters: ["clock_replaced": 10]), caps: caps)
            status = try buffer.status()
            #expect(status.deadLetterRows == 2)
            #expect(status.clockNoteRows == 3)
            #expect(status.text.contains("dead letters:         2 total, 2 kept"), "\(status.text)")
            #expect(status.text.contains("clock notes:          12 total, 3 kept"), "\(status.text)")
            #expect(try buffer.deadLetters(limit: 10).map(\.topic) == ["n/19", "n/18", "n/17", "t/2", "t/0"])

            // More dead letters than the cap: the newest 3 stay, the notes are untouched.
            try buffer.seal(SealInput(deadLetters: (20..<24).map(letter), counters: ["dead_letters": 4]), caps: caps)
            status = try buffer.status()
            #expect((status.deadLetterRows, status.clockNoteRows) == (3, 3))
            #expect(status.counters["dead_letters"] == 6)
            #expect(try buffer.deadLetters(limit: 10).map(\.topic) == ["t/23", "t/22", "t/21", "n/19", "n/18", "n/17"])
        }
    }

    @Test("a buffer file written before dead-letter kinds: its 'replaced:' rows read as notes, and opening it for writing labels them")
    func deadLetterKindMigration() async throws {
        try await withTemporaryDirectory { dir in
            // The layout of the files written before the kind column (schema version 2).
            let path = dir.file("old.db")
            try OldBufferFile(version: 2, byMigrator: false).write(to: path)

            let readOnly = try EdgeBuffer.openReadOnly(path: path)
            var status = try readOnly.status()
            #expect((status.deadLetterRows, status.clockNoteRows) == (1, 1))
            #expect(try readOnly.deadLetters(limit: 5).map(\.kind) == [.clockNote, .deadLetter])

            let buffer = try EdgeBuffer.open(path: path, gateway: OldBufferFile.gateway)
            status = try buffer.status()
            #expect((status.deadLetterRows, status.clockNoteRows) == (1, 1))
            #expect(try buffer.deadLetters(limit: 5).map(\.kind) == [.clockNote, .deadLetter])
            let kinds = try await DatabaseQueue(path: path).read { db in
                try String.fetchAll(db, sql: "SELECT kind FROM dead_letters ORDER BY id")
            }
            #expect(kinds == ["dead_letter", "clock_note"])
        }
    }

    @Test("a file that is not SQLite, or another program's database, is a clear error and is left untouched")
    func foreignOrDamagedFiles() async throws {
        try await withTemporaryDirectory { dir in
            let garbage = dir.file("garbage.db")
            let junk = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try junk.write(to: URL(fileURLWithPath: garbage))
            #expect(throws: WeirError.self) { try EdgeBuffer.open(path: garbage, gateway: "gw-1") }
            #expect(try Data(contentsOf: URL(fileURLWithPath: garbage)) == junk)

            let foreign = dir.file("foreign.db")
            let queue = try DatabaseQueue(path: foreign)
            try await queue.write { db in try db.execute(sql: "CREATE TABLE invoices (id INTEGER PRIMARY KEY)") }
            try queue.close()
            do {
                _ = try EdgeBuffer.open(path: foreign, gateway: "gw-1")
                Issue.record("opened another program's database")
            } catch let error as WeirError {
                #expect(error.message.contains("another program"))
            }

            _ = try EdgeBuffer.open(path: dir.file("mine.db"), gateway: "gw-1")
            do {
                _ = try EdgeBuffer.open(path: dir.file("mine.db"), gateway: "gw-2")
                Issue.record("opened gw-1's buffer as gw-2")
            } catch let error as WeirError {
                #expect(error.message.contains("belongs to gateway 'gw-1'"))
            }
        }
    }

    @Test("the status and dead-letters commands read the file while it is open for writing (WAL)")
    func readersWhileWriting() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.file("b.db")
            let buffer = try EdgeBuffer.open(path: path, gateway: "gw-1")
            try buffer.seal(SealInput(readings: Self.readings(0..<7),
                                      deadLetters: [DeadLetter(at: 1, topic: "devices/x/telemetry", payload: Array("{oops".utf8), reason: "not JSON")],
                                      counters: ["dead_letters": 1]), caps: Self.caps)
            let status = try await EdgeProcess.runCommand(["status", "--buffer", path, "--json"], in: dir.path)
            #expect(status.status == 0, "\(status.stderr)")
            let decoded = try JSONDecoder().decode(EdgeStatus.self, from: Data(status.stdout.utf8))
            #expect(decoded.readings == 7)
            #expect(decoded.chunks == 1)
            let letters = try await EdgeProcess.runCommand(["dead-letters", "--buffer", path], in: dir.path)
            #expect(letters.stdout.contains("not JSON"))
            #expect(letters.stdout.contains("{oops"))
            try buffer.seal(SealInput(readings: Self.readings(7..<9)), caps: Self.caps)
        }
    }

    @Test("a batch the cloud refuses for good moves to the rejected table with the response; nothing is deleted silently")
    func rejectedKeepsChunks() async throws {
        try await withTemporaryDirectory { dir in
            let buffer = try EdgeBuffer.open(path: dir.file("b.db"), gateway: "gw-1")
            let a = try buffer.seal(SealInput(readings: Self.readings(0..<10)), caps: Self.caps)
            try buffer.reject(seqs: [a.seq!], dropIDs: [], batch: "gw-1:1", status: 422, response: "{\"error\":\"nope\"}")
            let status = try buffer.status()
            #expect(status.chunks == 0)
            #expect(status.rejectedChunks == 1)
            #expect(buffer.bufferedBytes == 0)
            let queue = try DatabaseQueue(path: dir.file("b.db"))
            let row = try await queue.read { db in try Row.fetchOne(db, sql: "SELECT status, response, readings FROM rejected") }
            #expect(row?["status"] == 422)
            #expect(row?["readings"] == 10)
            #expect((row?["response"] as String?)?.contains("nope") == true)
        }
    }

    @Test("a backlog of small chunks is compacted: same readings, same chunk order, fewer bytes, in-flight chunks untouched")
    func compactionKeepsReadings() async throws {
        try await withTemporaryDirectory { dir in
            let buffer = try EdgeBuffer.open(path: dir.file("b.db"), gateway: "gw-1")
            var all: [Reading] = []
            var seqs: [Int64] = []
            for c in 0..<20 {
                // One reading per series per chunk, as 100 ms chunks from many devices hold.
                let chunk = (0..<50).map { d in Reading(device: "dev-\(d)", metric: "temp", ts: 1_732_540_000_000 + Int64(c) * 1000, value: 20 + Double((c + d) % 7) / 10) }
                all += chunk
                seqs.append(try buffer.seal(SealInput(readings: chunk), caps: Self.caps).seq!)
            }
            let before = try buffer.status()
            let merged = try buffer.compact(targetReadings: 10_000, minChunks: 4, excluding: [seqs[0]])
            #expect(merged == 18, "chunks 2…20 become one")
            let after = try buffer.status()
            #expect(after.chunks == 2)
            #expect(after.readings == 1000)
            #expect(after.bytes < before.bytes / 2, "\(before.bytes) → \(after.bytes) bytes")
            #expect(buffer.bufferedBytes == after.bytes)
            let chunks = try buffer.nextChunks(replay: .oldestFirst, maxBytes: 1 << 30, maxReadings: 1 << 30)
            #expect(chunks.map(\.seq) == [seqs[0], seqs[1]])
            var back: [Reading] = []
            for c in chunks { back += try WireBatch.decode(c.body, maxSize: 1 << 24).readings }
            // The codec groups readings by series; the set and each series' order stay.
            #expect(back.count == all.count)
            #expect(Set(back) == Set(all), "compaction changed the readings")
            #expect(try buffer.compact(targetReadings: 10_000, minChunks: 4, excluding: []) == 0, "nothing left worth merging")
        }
    }
}
