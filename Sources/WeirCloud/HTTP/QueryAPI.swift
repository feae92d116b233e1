import Foundation
import HTTPTypes
import Hummingbird
import WeirCore

/// The read side: `GET /v1/devices` and `GET /v1/devices/{device}/windows`, behind a
/// ``ReaderAuthMiddleware``: a reader sees only the devices its `devices:` patterns match,
/// and any other device answers exactly like one that never sent a reading.
struct QueryAPI: Sendable {
    let store: any ReadingStore
    let windowSizesMs: [Int64]
    let maxOutOfOrderMs: Int64

    func devices(_ request: Request, context: some ReaderRequestContext) async throws -> Response {
        let scope = try Self.scope(context)
        let all = try await store.devices()
        return CloudJSON.response(scope.isAll ? all : all.filter { scope.allows($0.device) })
    }

    /// The reader's devices; a route without the middleware is a programming error, and
    /// answers as if no reader were given.
    static func scope(_ context: some ReaderRequestContext) throws -> DeviceScope {
        guard let reader = context.reader else {
            throw CloudHTTPError(.unauthorized, "the query API needs a reader token")
        }
        return reader.devices
    }

    /// `?metric=temp&size=60s&from=<ms>&to=<ms>`: `metric` is required, `size` defaults to
    /// the first configured size, `from`/`to` to everything.
    func windows(_ request: Request, context: some ReaderRequestContext) async throws -> Response {
        let scope = try Self.scope(context)
        guard let device = context.parameters.get("device") else {
            throw CloudHTTPError(.badRequest, "device missing from the path")
        }

        let query = request.uri.queryParameters
        guard let metric = query.get("metric"), !metric.isEmpty else {
            throw CloudHTTPError(.badRequest, "query parameter 'metric' is required, e.g. ?metric=temp&size=60s")
        }
        var sizeMs = windowSizesMs[0]
        if let sizeText = query.get("size") {
            if let plain = Int64(sizeText) {
                sizeMs = plain
            } else {
                do { sizeMs = try DurationText.parseMilliseconds(sizeText) } catch {
                    throw CloudHTTPError(.badRequest, "query parameter 'size': \(error.message)")
                }
            }
            guard windowSizesMs.contains(sizeMs) else {
                let known = windowSizesMs.map { DurationText.formatMilliseconds($0) }.joined(separator: ", ")
                throw CloudHTTPError(.badRequest, "size \(DurationText.formatMilliseconds(sizeMs)) is not a configured window size (\(known))")
            }
        }
        func bound(_ name: String, _ fallback: Int64) throws -> Int64 {
            guard let text = query.get(name) else { return fallback }
            guard let value = Int64(text) else {
                throw CloudHTTPError(.badRequest, "query parameter '\(name)' must be epoch milliseconds, got '\(text.prefix(40))'")
            }
            return value
        }
        let from = try bound("from", Int64.min)
        let to = try bound("to", Int64.max)
        // Outside the reader's devices: the same answer, at the same point, as an unknown
        // device, so no answer tells the two apart.
        guard scope.allows(device),
              let summary = try await store.device(named: device),
              let windows = try await store.windows(device: device, metric: metric, sizeMs: sizeMs, from: from, to: to)
        else {
            throw Self.unknownDevice(device)
        }
        let watermark = summary.watermark
        let body = WindowsAnswer(
            device: device, metric: metric, sizeMs: sizeMs,
            windows: windows.map { record in
                let a = record.aggregate
                let closed = watermark.map { record.end <= $0 } ?? false
                return WindowsAnswer.Window(
                    start: record.start, end: record.end, count: a.count, sum: a.sum, min: a.min, max: a.max,
                    mean: a.mean, first: .init(ts: a.firstTs, value: a.firstValue), last: .init(ts: a.lastTs, value: a.lastValue),
                    state: closed ? "closed" : "open", revision: record.revision, late: record.late)
            })
        return CloudJSON.response(body)
    }
}

extension QueryAPI {
    static func unknownDevice(_ device: String) -> CloudHTTPError {
        CloudHTTPError(.notFound, "no readings from device '\(device.prefix(128))'")
    }
}

/// The body of `GET /v1/devices/{device}/windows` (also decoded by tests and benchmarks).
public struct WindowsAnswer: Codable, Sendable {
    public struct Point: Codable, Sendable {
        public var ts: Int64
        public var value: Double
    }

    public struct Window: Codable, Sendable {
        public var start: Int64
        public var end: Int64
        public var count: Int64
        public var sum: Double
        public var min: Double
        public var max: Double
        public var mean: Double
        public var first: Point
        public var last: Point
        public var state: String
        public var revision: Int64
        public var late: Int64
    }

    public var device: String
    public var metric: String
    public var sizeMs: Int64
    public var windows: [Window]

    enum CodingKeys: String, CodingKey {
        case device, metric, windows
        case sizeMs = "size_ms"
    }
}
