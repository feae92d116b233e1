import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import WeirCore
import WeirWire

/// `GET /v1/changes?after=CURSOR&limit=N&wait=30s`: window changes in commit order.
///
/// JSON: `{"changes": [{"cursor", "device", "metric", "size_ms", "start", "end", "revision",
/// "count", "sum", "min", "max", "mean", "first", "last", "state", "late", "committed_at"}],
/// "next": CURSOR}`. When nothing is newer than `after`, the answer waits up to `wait`
/// (default `0s`, at most `60s`) for a commit. `410` with `{"error", "oldest"}` when
/// `after` is older than what is kept.
///
/// With `Accept: text/event-stream` the same changes stream as Server-Sent Events (`id:`
/// is the cursor, `event: change`, `data:` the change's JSON), following new commits until
/// the client goes, the server shuts down, or `limit` changes were sent when `limit` was
/// given; a `Last-Event-ID` header resumes after that cursor. A comment line every 15 s
/// keeps proxies from closing an idle stream. `device=NAME` keeps only that device's changes
/// (`next` still moves past the others).
struct ChangeFeedAPI: Sendable {
    let feed: any ChangeFeedSource
    static let defaultLimit = 1_000
    static let maxLimit = 10_000
    static let maxWait: Duration = .seconds(60)
    static let heartbeat: Duration = .seconds(15)

    func changes(_ request: Request, context: some RequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var after: Int64 = 0
        if let text = query.get("after") ?? request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let value = Int64(text), value >= 0 else {
                throw CloudHTTPError(.badRequest, "query parameter 'after' must be a cursor (a whole number ≥ 0), got '\(text.prefix(40))'")
            }
            after = value
        }
        var limit = Self.defaultLimit
        let limitGiven = query.get("limit") != nil
        if let text = query.get("limit") {
            guard let value = Int(text), value > 0 else {
                throw CloudHTTPError(.badRequest, "query parameter 'limit' must be a positive whole number, got '\(text.prefix(40))'")
            }
            limit = min(value, Self.maxLimit)
        }
        var wait = Duration.zero
        if let text = query.get("wait") {
            do { wait = try DurationText.parse(text) } catch {
                throw CloudHTTPError(.badRequest, "query parameter 'wait': \(error.message)")
            }
            wait = min(max(wait, .zero), Self.maxWait)
        }
        let device = query.get("device").map { String($0) }
        let accept = request.headers[.accept] ?? ""
        if accept.contains("text/event-stream") {
            // Refuse a gone cursor with a status the client sees before the stream starts.
            if case .gone(let oldest) = try await feed.changes(after: after, limit: 1) { throw Self.gone(oldest) }
            return stream(after: after, limit: limitGiven ? limit : nil, device: device)
        }
        var page = try await feed.changes(after: after, limit: limit)
        if case .changes(let found, _) = page, found.isEmpty, wait > .zero {
            await feed.waitForChanges(after: after, timeout: wait)
            page = try await feed.changes(after: after, limit: limit)
        }
        switch page {
        case .gone(let oldest):
            throw Self.gone(oldest)
        case .changes(var changes, let next):
            if let device { changes.removeAll { $0.device != device } }
            var json = JSONWriter(capacity: 64 + changes.count * 320)
            json.raw("{\"changes\":[")
            for (i, change) in changes.enumerated() {
                if i > 0 { json.raw(",") }
                Self.write(change, into: &json)
            }
            json.raw("],\"next\":")
            json.int(next)
            json.raw("}")
            return QueryAPI.jsonResponse(json)
        }
    }

    static func gone(_ oldest: Int64) -> CloudHTTPError {
        CloudHTTPError(.gone, "cursor is older than the changes kept (changes_retention); the oldest available is \(oldest): start after \(oldest - 1) or reload the windows")
    }

    /// One change as a JSON object.
    static func write(_ change: WindowChange, into json: inout JSONWriter) {
        WindowsAnswer.writeWindow(change.record, closed: change.closed, into: &json)
        json.raw(",\"cursor\":"); json.int(change.cursor)
        json.raw(",\"device\":"); json.string(change.device)
        json.raw(",\"metric\":"); json.string(change.metric)
        json.raw(",\"size_ms\":"); json.int(change.record.sizeMs)
        json.raw(",\"committed_at\":"); json.int(change.committedAt)
        json.raw("}")
    }

    private func stream(after: Int64, limit: Int?, device: String?) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let feed = self.feed
        let body = ResponseBody { writer in
            var cursor = after
            var sent = 0
            var lastWrite = ContinuousClock.now
            // Ends when the server shuts down gracefully (an open stream must not hold it up):
            // waits are short, a commit wakes them at once.
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let want = limit.map { min($0 - sent, Self.maxLimit) } ?? Self.defaultLimit
                if want <= 0 { break }
                guard case .changes(var changes, let next) = try await feed.changes(after: cursor, limit: want) else { break }
                if changes.isEmpty == false, let device {
                    changes.removeAll { $0.device != device }
                    if changes.isEmpty { cursor = next; continue }
                }
                if !changes.isEmpty {
                    var json = JSONWriter(capacity: changes.count * 360)
                    for change in changes {
                        json.raw("id: "); json.int(change.cursor)
                        json.raw("\nevent: change\ndata: ")
                        Self.write(change, into: &json)
                        json.raw("\n\n")
                    }
                    try await writer.write(json.buffer)
                    lastWrite = .now
                    sent += changes.count
                    cursor = next
                    continue
                }
                if ContinuousClock.now - lastWrite >= Self.heartbeat {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    lastWrite = .now
                }
                await feed.waitForChanges(after: cursor, timeout: .seconds(1))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
