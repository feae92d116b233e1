import WeirCore

/// The device page (`GET /devices/{device}`): a plot per metric of the window means with the
/// min–max band, gaps and edge drops shaded, for a chosen window size and range (last hour,
/// day or week before the device's newest reading, or `from`/`to`). The choosers are links,
/// so the page works without JavaScript; `live.js` follows the changefeed from the cursor
/// the page was rendered at.
struct DevicePage {
    struct MetricPlot {
        var plot: WindowPlot
        var gapCount: Int { plot.gaps.count }
    }

    static let ranges: [(name: String, ms: Int64)] = [("1h", 3_600_000), ("1d", 86_400_000), ("1w", 604_800_000)]

    var summary: DeviceSummary
    var sizes: [Int64]
    var sizeMs: Int64
    var rangeName: String?
    var from: Int64
    var to: Int64
    var plots: [MetricPlot]
    var cursor: Int64
    var nowMs: Int64
    /// `?live_limit=N`: live.js stops after N changes (for headless browser tests).
    var liveLimit: Int?

    func render() -> [UInt8] {
        var html = HTMLText(capacity: 16_384 + plots.reduce(0) { $0 + $1.plot.windows.count * 160 })
        let device = summary.device
        Dashboard.head(&html, title: "Weir — \(device)")
        html.raw("<header><p><a href=\"/\">← fleet</a></p><h1>"); html.text(device); html.raw("</h1><p>")
        html.raw("last seen "); html.text(summary.lastSeen.map { DashboardFormat.age(nowMs - $0) + " ago" } ?? "never")
        html.raw(" · \(summary.readings) readings · \(summary.duplicates) duplicates · \(summary.late) late · \(summary.droppedAtEdge) dropped at edge")
        if let watermark = summary.watermark { html.raw(" · watermark "); html.text(DashboardFormat.time(watermark)); html.raw(" UTC") }
        html.raw("</p></header><main><nav class=\"choosers\">size: ")
        let encoded = Dashboard.percentEncoded(device)
        for size in sizes {
            let label = DurationText.formatMilliseconds(size)
            if size == sizeMs { html.raw("<b>\(label)</b> ") } else {
                html.raw("<a href=\"/devices/"); html.text(encoded)
                html.raw("?size=\(label)&amp;\(rangeName.map { "range=\($0)" } ?? "from=\(from)&amp;to=\(to)")\">\(label)</a> ")
            }
        }
        html.raw(" · range: ")
        for range in Self.ranges {
            if range.name == rangeName { html.raw("<b>last \(range.name)</b> ") } else {
                html.raw("<a href=\"/devices/"); html.text(encoded)
                html.raw("?size=\(DurationText.formatMilliseconds(sizeMs))&amp;range=\(range.name)\">last \(range.name)</a> ")
            }
        }
        html.raw("<form method=\"get\" class=\"fromto\"><input type=\"hidden\" name=\"size\" value=\"\(DurationText.formatMilliseconds(sizeMs))\">")
        html.raw("from <input name=\"from\" value=\"\(from)\" size=\"14\"> to <input name=\"to\" value=\"\(to)\" size=\"14\"> (epoch ms) <button>show</button></form></nav>")
        html.raw("<p class=\"legend\"><span class=\"key closed\"></span>closed <span class=\"key open\"></span>open <span class=\"key revised\"></span>revised by late data ")
        html.raw("<span class=\"key band\"></span>min–max <span class=\"key no_data\"></span>gap, no data <span class=\"key dropped_at_edge\"></span>gap, dropped at edge ")
        html.raw("<span class=\"key drop\"></span>edge drop ledger · <span id=\"live\" data-cursor=\"\(cursor)\"")
        if let liveLimit { html.raw(" data-live-limit=\"\(liveLimit)\"") }
        html.raw(" data-device=\"")
        html.text(device)
        html.raw("\">live: off (needs JavaScript)</span></p>")
        if plots.isEmpty { html.raw("<p>No metrics yet.</p>") }
        for (i, metric) in plots.enumerated() {
            let p = metric.plot
            html.raw("<section class=\"metric\"><h2>"); html.text(p.metric)
            html.raw(" <small>\(p.windows.count) windows of \(DurationText.formatMilliseconds(p.sizeMs))")
            if let cadence = p.cadenceMs { html.raw(" · cadence \(DurationText.formatMilliseconds(cadence))") } else { html.raw(" · cadence not learned yet") }
            html.raw(" · gaps: \(metric.gapCount) · edge drops: \(p.drops.count)</small></h2>")
            p.write(into: &html, id: "m\(i)")
            if !p.gaps.isEmpty || !p.drops.isEmpty {
                html.raw("<ul class=\"gaps\">")
                for gap in p.gaps {
                    html.raw("<li class=\"\(gap.cause.rawValue)\">gap \(gap.cause == .droppedAtEdge ? "dropped at edge (\(gap.dropped) readings)" : "no data"): ")
                    html.text("\(DashboardFormat.time(gap.from)) – \(DashboardFormat.time(gap.to)) UTC (\(DurationText.formatMilliseconds(gap.to - gap.from)))")
                    html.raw("</li>")
                }
                for drop in p.drops {
                    html.raw("<li class=\"drop\">edge drop ledger: \(drop.count) readings lost, ")
                    html.text("\(DashboardFormat.time(drop.from)) – \(DashboardFormat.time(drop.to)) UTC")
                    html.raw("</li>")
                }
                html.raw("</ul>")
            }
            html.raw("</section>")
        }
        html.raw("</main><script src=\"/assets/live.js\"></script></body></html>")
        return html.bytes
    }
}
