import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import WeirCore
import WeirWire

/// The read side: `GET /v1/devices` and `GET /v1/devices/{device}/windows`, behind a
/// ``ReaderAuthMiddleware``: a reader sees only the devices its `devices:` patterns match,
/// and any other device answers exactly like one that never sent a reading.
struct QueryAPI: Sendable {
    let store: any ReadingStore
    let windowSizesMs: [Int64]
    let maxOutOfOrderMs: Int64
    /// Cadences, gaps and recent activity, when the store keeps them.
    var continuity: (any ContinuitySource)? = nil
    var recent: RecentActivityCache? = nil
    var gapFactor: Double = 3

    func devices(_ request: Request, context: some ReaderRequestContext) async throws -> Response {
        let scope = try Self.scope(context)
        let all = try await store.devices()
        let visible = scope.isAll ? all : all.filter { scope.allows($0.device) }
        let activity = try await recent?.get() ?? [:]
        return CloudJSON.response(visible.map { DeviceListEntry(summary: $0, completeness1h: activity[$0.device]?.completeness1h) })
    }

    /// The reader's devices; a route without the middleware is a programming error, and
    /// answers as if no reader were given.
    static func scope(_ context: some ReaderRequestContext) throws -> DeviceScope {
        guard let reader = context.reader else {
            throw CloudHTTPError(.unauthorized, "the query API needs a reader token")
        }
        return reader.devices
    }

    /// `GET /v1/devices/{device}/gaps?metric=M&from=&to=`.
    func gaps(_ request: Request, context: some ReaderRequestContext) async throws -> Response {
        guard let device = context.parameters.get("device") else {
            throw CloudHTTPError(.badRequest, "device missing from the path")
        }
        // A device outside the reader's globs answers exactly like an unknown one.
        guard try Self.scope(context).allows(device) else {
            throw CloudHTTPError(.notFound, "no readings from device '\(device.prefix(128))'")
        }
        let query = request.uri.queryParameters
        guard let metric = query.get("metric"), !metric.isEmpty else {
            throw CloudHTTPError(.badRequest, "query parameter 'metric' is required, e.g. ?metric=temp")
        }
        let from = try Self.bound(query, "from", Int64.min)
        let to = try Self.bound(query, "to", Int64.max)
        guard let continuity else { throw CloudHTTPError(.notImplemented, CloudApplication.sqliteOnly("gaps")) }
        guard let found = try await continuity.continuity(device: device, metric: metric, from: from, to: to, gapFactor: gapFactor) else {
            throw CloudHTTPError(.notFound, "no readings from device '\(device.prefix(128))'")
        }
        var json = JSONWriter()
        GapsAnswer.write(device: device, metric: metric, found, gapFactor: gapFactor, into: &json)
        return Self.jsonResponse(json)
    }

    static func bound(_ query: FlatDictionary<Substring, Substring>, _ name: String, _ fallback: Int64) throws -> Int64 {
        guard let text = query.get(name) else { return fallback }
        guard let value = Int64(text) else {
            throw CloudHTTPError(.badRequest, "query parameter '\(name)' must be epoch milliseconds, got '\(text.prefix(40))'")
        }
        return value
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
        let cadence = try await continuity?.cadence(device: device, metric: metric)
        var json = JSONWriter(capacity: 256 + windows.count * 300)
        WindowsAnswer.write(device: device, metric: metric, sizeMs: sizeMs, windows: windows,
                            watermark: summary.watermark, cadenceMs: cadence, into: &json)
        return Self.jsonResponse(json)
    }

    static func jsonResponse(_ json: JSONWriter, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: json.buffer))
    }
}

extension WindowsAnswer {
    /// Writes the answer as JSON without `Codable` (the hot path of the read API): the same
    /// fields `WindowsAnswer` decodes. A window is `closed` once the device's watermark
    /// has reached its end.
    static func write(device: String, metric: String, sizeMs: Int64, windows: [WindowRecord],
                      watermark: Int64?, cadenceMs: Int64? = nil, into json: inout JSONWriter) {
        json.raw("{\"device\":")
        json.string(device)
        json.raw(",\"metric\":")
        json.string(metric)
        json.raw(",\"size_ms\":")
        json.int(sizeMs)
        if let cadenceMs {
            json.raw(",\"cadence_ms\":")
            json.int(cadenceMs)
        }
        json.raw(",\"windows\":[")
        let expected = cadenceMs.map { Cadence.expected(sizeMs: sizeMs, cadenceMs: $0) }
        var first = true
        for record in windows {
            if first { first = false } else { json.raw(",") }
            writeWindow(record, closed: WindowState(end: record.end, watermark: watermark) == .closed, into: &json)
            if let expected {
                json.raw(",\"expected\":"); json.double(expected)
                json.raw(",\"completeness\":"); json.double(Cadence.completeness(count: record.aggregate.count, expected: expected))
            }
            json.raw("}")
        }
        json.raw("]}")
    }

    /// Writes one window's fields, leaving its object open (callers may add fields).
    @inline(__always)
    static func writeWindow(_ record: WindowRecord, closed: Bool, into json: inout JSONWriter) {
        let a = record.aggregate
        json.raw("{\"start\":"); json.int(record.start)
        json.raw(",\"end\":"); json.int(record.end)
        json.raw(",\"count\":"); json.int(a.count)
        json.raw(",\"sum\":"); json.double(a.sum)
        json.raw(",\"min\":"); json.double(a.min)
        json.raw(",\"max\":"); json.double(a.max)
        json.raw(",\"mean\":"); json.double(a.mean)
        json.raw(",\"first\":{\"ts\":"); json.int(a.firstTs)
        json.raw(",\"value\":"); json.double(a.firstValue)
        json.raw("},\"last\":{\"ts\":"); json.int(a.lastTs)
        json.raw(",\"value\":"); json.double(a.lastValue)
        json.raw("},\"state\":"); if closed { json.raw("\"closed\"") } else { json.raw("\"open\"") }
        json.raw(",\"revision\":"); json.int(record.revision)
        json.raw(",\"late\":"); json.int(record.late)
    }
}

extension QueryAPI {
    static func unknownDevice(_ device: String) -> CloudHTTPError {
        CloudHTTPError(.notFound, "no readings from device '\(device.prefix(128))'")
    }
}

/// One entry of `GET /v1/devices`: the summary and `completeness_1h`.
public struct DeviceListEntry: Codable, Sendable {
    public var summary: DeviceSummary
    public var completeness1h: Double?

    enum CodingKeys: String, CodingKey {
        case completeness1h = "completeness_1h"
    }

    public init(summary: DeviceSummary, completeness1h: Double?) {
        self.summary = summary
        self.completeness1h = completeness1h
    }

    public init(from decoder: any Decoder) throws {
        summary = try DeviceSummary(from: decoder)
        completeness1h = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Double.self, forKey: .completeness1h)
    }

    public func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(completeness1h, forKey: .completeness1h)
    }
}

/// The body of `GET /v1/devices/{device}/gaps`.
public struct GapsAnswer: Codable, Sendable {
    public struct Interval: Codable, Sendable, Hashable {
        public var from: Int64
        public var to: Int64
        public var cause: String?
        public var dropped: Int64?
        public var count: Int64?
    }

    public var device: String
    public var metric: String
    public var cadenceMs: Int64?
    public var gapFactor: Double
    public var gaps: [Interval]
    /// The edge's drop-ledger rows of the series in the range (`from`, `to`, `count`).
    public var drops: [Interval]

    enum CodingKeys: String, CodingKey {
        case device, metric, gaps, drops
        case cadenceMs = "cadence_ms"
        case gapFactor = "gap_factor"
    }

    static func write(device: String, metric: String, _ found: SeriesContinuity, gapFactor: Double, into json: inout JSONWriter) {
        json.raw("{\"device\":"); json.string(device)
        json.raw(",\"metric\":"); json.string(metric)
        json.raw(",\"cadence_ms\":"); json.int(found.cadenceMs)
        json.raw(",\"gap_factor\":"); json.double(gapFactor)
        json.raw(",\"gaps\":[")
        for (i, gap) in found.gaps.enumerated() {
            if i > 0 { json.raw(",") }
            json.raw("{\"from\":"); json.int(gap.from)
            json.raw(",\"to\":"); json.int(gap.to)
            json.raw(",\"cause\":"); json.string(gap.cause.rawValue)
            json.raw(",\"dropped\":"); json.int(gap.dropped)
            json.raw("}")
        }
        json.raw("],\"drops\":[")
        for (i, drop) in found.drops.enumerated() {
            if i > 0 { json.raw(",") }
            json.raw("{\"from\":"); json.int(drop.from)
            json.raw(",\"to\":"); json.int(drop.to)
            json.raw(",\"count\":"); json.int(drop.count)
            json.raw("}")
        }
        json.raw("]}")
    }
}
