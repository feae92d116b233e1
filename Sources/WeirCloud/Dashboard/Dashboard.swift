import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import WeirCore
import WeirSupport

/// The dashboard's routes: `GET /` (fleet), `GET /devices/{device}`, `GET /assets/...`
/// (the stylesheet and `live.js`, served from the binary). Server-rendered HTML with inline
/// SVG; the only script follows the changefeed.
struct Dashboard: Sendable {
    let store: any ReadingStore
    let continuity: any ContinuitySource
    let source: any DashboardSource
    let feed: any ChangeFeedSource
    let recent: RecentActivityCache
    let windowSizesMs: [Int64]
    let maxOutOfOrderMs: Int64
    let gapFactor: Double

    func routes() -> RouteCollection<CloudRequestContext> {
        let routes = RouteCollection(context: CloudRequestContext.self)
        routes.get("/") { request, _ in try await fleet(request) }
        routes.get("/devices/:device") { request, context in try await device(request, context: context) }
        routes.get("/assets/dashboard.css") { _, _ in Self.asset(DashboardAssets.css, type: "text/css; charset=utf-8") }
        routes.get("/assets/live.js") { _, _ in Self.asset(DashboardAssets.liveJS, type: "text/javascript; charset=utf-8") }
        return routes
    }

    func fleet(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        async let devices = store.devices()
        async let gateways = source.gatewayActivity(nowMs: WallClock.nowMs())
        let recent = try await self.recent.get()
        var page = FleetPage(devices: try await devices, recent: recent, gateways: try await gateways, nowMs: WallClock.nowMs())
        if let text = query.get("sort"), let sort = FleetPage.Column(rawValue: String(text)) { page.sort = sort }
        page.descending = query.get("order") == "desc"
        page.filter = String((query.get("q") ?? "").prefix(128))
        return Self.html(page.render())
    }

    func device(_ request: Request, context: some RequestContext) async throws -> Response {
        // Links percent-encode the name (device names may hold '/'); the router leaves it encoded.
        guard let raw = context.parameters.get("device") else { throw CloudHTTPError(.badRequest, "device missing from the path") }
        let name = raw.removingPercentEncoding ?? raw
        let cursor = feed.latestCursor  // before reading: live.js then misses nothing
        guard let summary = try await store.device(named: name) else {
            throw CloudHTTPError(.notFound, "no readings from device '\(name.prefix(128))'")
        }
        let query = request.uri.queryParameters
        var sizeMs = windowSizesMs.min() ?? 60_000
        if let text = query.get("size") {
            let parsed = Int64(text) ?? (try? DurationText.parseMilliseconds(String(text)))
            guard let parsed, windowSizesMs.contains(parsed) else {
                throw CloudHTTPError(.badRequest, "size '\(text.prefix(20))' is not a configured window size")
            }
            sizeMs = parsed
        }
        let newest = Watermark.newestTs(behind: summary.watermark ?? 0, maxOutOfOrderMs: maxOutOfOrderMs)
        var rangeName: String? = query.get("range").map { String($0) } ?? "1d"
        var to = WindowMath.start(of: newest, size: sizeMs) + sizeMs
        var from: Int64
        if let fromText = query.get("from"), let toText = query.get("to"), query.get("range") == nil {
            guard let f = Int64(fromText), let t = Int64(toText), f < t else {
                throw CloudHTTPError(.badRequest, "from and to must be epoch milliseconds with from < to")
            }
            from = f
            to = t
            rangeName = nil
        } else {
            guard let range = DevicePage.ranges.first(where: { $0.name == rangeName }) else {
                throw CloudHTTPError(.badRequest, "range must be one of 1h, 1d, 1w (or give from and to)")
            }
            from = to - range.ms
        }
        let (size, rangeFrom, rangeTo) = (sizeMs, from, to)
        let metrics = try await source.metrics(device: name)
        var plots: [DevicePage.MetricPlot] = []
        for metric in metrics {
            async let windows = store.windows(device: name, metric: metric, sizeMs: size, from: rangeFrom, to: rangeTo)
            async let found = continuity.continuity(device: name, metric: metric, from: rangeFrom, to: rangeTo, gapFactor: gapFactor)
            let continuity = try await found
            let plot = WindowPlot(metric: metric, sizeMs: sizeMs, from: from, to: to, windows: try await windows ?? [],
                                  watermark: summary.watermark, gaps: continuity?.gaps ?? [], drops: continuity?.drops ?? [],
                                  cadenceMs: continuity?.cadenceMs)
            plots.append(.init(plot: plot))
        }
        var page = DevicePage(summary: summary, sizes: windowSizesMs.sorted(), sizeMs: sizeMs, rangeName: rangeName, from: from, to: to,
                              plots: plots, cursor: cursor, nowMs: WallClock.nowMs())
        page.liveLimit = query.get("live_limit").flatMap { Int($0) }.map { min(max($0, 1), 1_000) }
        return Self.html(page.render())
    }

    static func html(_ bytes: [UInt8]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "max-age=300"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// The page's head: title, stylesheet.
    static func head(_ html: inout HTMLText, title: String) {
        html.raw("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
        html.text(title)
        html.raw("</title><meta name=\"viewport\" content=\"width=device-width\"><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head><body>")
    }

    /// Percent-encodes a path segment or query value.
    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? text
    }

}
