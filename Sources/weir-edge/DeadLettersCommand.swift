import ArgumentParser
import Foundation
import WeirEdge

/// `weir-edge dead-letters [--limit N]`: the newest rejected payloads, with reasons, and
/// the clock notes kept beside them (labelled `note:`; their readings were accepted).
struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List the newest dead letters (and clock notes): time, topic, reason and the payload's start."
    )

    @Option(name: .long, help: "The edge's YAML config file (to find buffer.path; default: WEIR_EDGE_BUFFER_PATH or ./weir-edge.db).")
    var config: String?

    @Option(name: .long, help: "The buffer file (instead of --config).")
    var buffer: String?

    @Option(name: .long, help: "How many to show (newest first).")
    var limit: Int = 20

    @Flag(name: .long, help: "Print JSON lines.")
    var json = false

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let path = try await BufferPath.resolve(config: config, buffer: buffer)
        do {
            let store = try EdgeBuffer.openReadOnly(path: path)
            let status = try store.status()
            let letters = try store.deadLetters(limit: limit)
            if json {
                for d in letters {
                    let object: [String: Any] = ["at": d.at, "topic": d.topic, "reason": d.reason, "kind": d.kind.rawValue,
                                                 "payload": String(decoding: d.payload, as: UTF8.self)]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                }
                return
            }
            print("\(status.counters["dead_letters"] ?? 0) dead letters in total, \(status.deadLetterRows) kept; "
                  + "\(status.counters["clock_replaced"] ?? 0) clock notes (readings kept with the receive time) in total, "
                  + "\(status.clockNoteRows) kept; newest \(letters.count):")
            for d in letters {
                let time = Date(timeIntervalSince1970: Double(d.at) / 1000).formatted(.iso8601)
                let text = String(decoding: d.payload.prefix(200), as: UTF8.self)
                    .map { $0.isNewline ? " " : $0 }.reduce(into: "") { $0.append($1) }
                // A note's reading was accepted: labelled so it is not read as a loss.
                let label = d.kind == .clockNote ? "note:   " : "reason: "
                print("\(time)  \(d.topic)\n    \(label) \(d.reason)\n    payload: \(text)\(d.payload.count > 200 ? "…" : "")")
            }
        } catch {
            throw ExitFailure("weir-edge dead-letters: \(error)")
        }
    }
}
