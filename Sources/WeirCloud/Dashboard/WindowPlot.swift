import Foundation
import NIOCore
import WeirCore

/// The device page's plot of one metric: window means as a line, the min–max band behind
/// it, one marker per window (closed filled, open hollow, revised orange), gaps shaded by
/// cause and drop-ledger intervals shaded, each with a native SVG `<title>` tooltip (no
/// script needed).
///
/// The same points are embedded as JSON (`start, mean, min, max, state` per window) for
/// `live.js`, which redraws the plot from them when the changefeed brings a change.
struct WindowPlot {
    static let width = 960.0
    static let height = 220.0
    static let left = 56.0
    static let right = 8.0
    static let top = 8.0
    static let bottom = 22.0
    /// Above this many windows only open and revised windows get a marker.
    static let maxMarkers = 2_000

    var metric: String
    var sizeMs: Int64
    var from: Int64
    var to: Int64
    var windows: [WindowRecord]
    var watermark: Int64?
    var gaps: [Gap]
    var drops: [EdgeDrop]
    var cadenceMs: Int64?

    /// The value range drawn: the windows' min and max with a little air.
    var valueRange: (low: Double, high: Double) {
        var low = Double.infinity, high = -Double.infinity
        for w in windows where w.aggregate.min.isFinite && w.aggregate.max.isFinite {
            low = Swift.min(low, w.aggregate.min)
            high = Swift.max(high, w.aggregate.max)
        }
        if !low.isFinite { return (0, 1) }
        if high - low < 1e-9 { return (low - 1, high + 1) }
        let air = (high - low) * 0.05
        return (low - air, high + air)
    }

    func x(_ t: Int64) -> Double {
        let span = Double(Swift.max(1, to - from))
        let plotWidth = Self.width - Self.left - Self.right
        return Self.left + Swift.min(Swift.max(Double(t - from) / span, 0), 1) * plotWidth
    }

    func y(_ v: Double, _ range: (low: Double, high: Double)) -> Double {
        let plotHeight = Self.height - Self.top - Self.bottom
        return Self.top + (range.high - v) / (range.high - range.low) * plotHeight
    }

    func state(_ w: WindowRecord) -> String {
        WindowState(end: w.end, watermark: watermark).rawValue
    }

    func write(into html: inout HTMLText, id: String) {
        let range = valueRange
        html.raw("<svg class=\"plot\" id=\"plot-"); html.text(id)
        html.raw("\" viewBox=\"0 0 \(Int(Self.width)) \(Int(Self.height))\" width=\"\(Int(Self.width))\" height=\"\(Int(Self.height))\"")
        html.raw(" data-metric=\""); html.text(metric)
        html.raw("\" data-size=\"\(sizeMs)\" data-from=\"\(from)\" data-to=\"\(to)\" data-points=\"\(windows.count)\"")
        html.raw(" data-low=\"\(range.low)\" data-high=\"\(range.high)\" data-watermark=\"\(watermark ?? Int64.min)\">")
        // Axes: the value range at the left, the time range below.
        let plotBottom = Self.height - Self.bottom
        html.raw("<rect class=\"frame\" x=\"\(Self.left)\" y=\"\(Self.top)\" width=\"\(Self.width - Self.left - Self.right)\" height=\"\(plotBottom - Self.top)\"/>")
        html.raw("<text class=\"axis\" x=\"\(Self.left - 4)\" y=\"\(Self.top + 10)\" text-anchor=\"end\">"); html.text(DashboardFormat.axis(range.high)); html.raw("</text>")
        html.raw("<text class=\"axis\" x=\"\(Self.left - 4)\" y=\"\(plotBottom)\" text-anchor=\"end\">"); html.text(DashboardFormat.axis(range.low)); html.raw("</text>")
        html.raw("<text class=\"axis\" x=\"\(Self.left)\" y=\"\(Self.height - 6)\">"); html.text(DashboardFormat.time(from)); html.raw(" UTC</text>")
        html.raw("<text class=\"axis\" x=\"\(Self.width - Self.right)\" y=\"\(Self.height - 6)\" text-anchor=\"end\">"); html.text(DashboardFormat.time(to)); html.raw(" UTC</text>")

        // Drop-ledger rows, then gaps, behind the data.
        for drop in drops {
            shade(&html, class: "drop", from: drop.from, to: drop.to,
                  title: "edge drop ledger: \(drop.count) readings lost at the gateway, \(DashboardFormat.time(drop.from)) – \(DashboardFormat.time(drop.to)) UTC")
        }
        for gap in gaps {
            let what = gap.cause == .droppedAtEdge ? "gap, dropped at edge (\(gap.dropped) readings reported lost)" : "gap, no data"
            shade(&html, class: "gap \(gap.cause == .droppedAtEdge ? "dropped_at_edge" : "no_data")", from: gap.from, to: gap.to,
                  title: "\(what): \(DashboardFormat.time(gap.from)) – \(DashboardFormat.time(gap.to)) UTC (\(DurationText.formatMilliseconds(gap.to - gap.from)))",
                  cause: gap.cause.rawValue)
        }

        // Band and mean line, broken where windows are missing.
        html.raw("<path class=\"band\" d=\"")
        forEachRun { run in
            html.raw("M")
            for (i, w) in run.enumerated() {
                if i > 0 { html.raw(" L") }
                html.coordinate(x(w.start + sizeMs / 2)); html.raw(","); html.coordinate(y(w.aggregate.max, range))
            }
            for w in run.reversed() {
                html.raw(" L"); html.coordinate(x(w.start + sizeMs / 2)); html.raw(","); html.coordinate(y(w.aggregate.min, range))
            }
            html.raw("Z")
        }
        html.raw("\"/><path class=\"mean\" d=\"")
        forEachRun { run in
            html.raw("M")
            for (i, w) in run.enumerated() {
                if i > 0 { html.raw(" L") }
                html.coordinate(x(w.start + sizeMs / 2)); html.raw(","); html.coordinate(y(w.aggregate.mean, range))
            }
        }
        html.raw("\"/><g class=\"markers\">")
        let allMarkers = windows.count <= Self.maxMarkers
        for w in windows {
            let state = state(w)
            guard allMarkers || state != "closed" || w.revision > 0 else { continue }
            marker(&html, w, state: state, range: range)
        }
        html.raw("</g></svg>")

        // The points for live.js.
        html.raw("<script type=\"application/json\" class=\"plot-data\" data-plot=\"plot-"); html.text(id); html.raw("\">[")
        var json = JSONWriter(capacity: windows.count * 48)
        for (i, w) in windows.enumerated() {
            if i > 0 { json.raw(",") }
            json.raw("["); json.int(w.start)
            json.raw(","); json.double(Self.rounded(w.aggregate.mean))
            json.raw(","); json.double(Self.rounded(w.aggregate.min))
            json.raw(","); json.double(Self.rounded(w.aggregate.max))
            json.raw(","); json.int(w.revision)
            json.raw("]")
        }
        html.raw(String(buffer: json.buffer))
        html.raw("]</script>")
    }

    /// Six significant digits are plenty for pixels.
    static func rounded(_ v: Double) -> Double {
        guard v.isFinite, v != 0 else { return v.isFinite ? v : 0 }
        let scale = pow10(5 - Int(log10(abs(v)).rounded(.down)))
        return (v * scale).rounded() / scale
    }

    private static func pow10(_ e: Int) -> Double {
        var r = 1.0
        if e >= 0 { for _ in 0..<e { r *= 10 } } else { for _ in 0..<(-e) { r /= 10 } }
        return r
    }

    /// Calls `body` with each run of adjacent windows.
    private func forEachRun(_ body: (ArraySlice<WindowRecord>) -> Void) {
        var runStart = 0
        for i in windows.indices where i > 0 && windows[i].start != windows[i - 1].start + sizeMs {
            body(windows[runStart..<i])
            runStart = i
        }
        if runStart < windows.count { body(windows[runStart...]) }
    }

    private func shade(_ html: inout HTMLText, class cls: String, from a: Int64, to b: Int64, title: String, cause: String? = nil) {
        let x0 = x(a), x1 = x(b)
        html.raw("<rect class=\"\(cls)\" x=\""); html.coordinate(x0)
        html.raw("\" y=\"\(Self.top)\" width=\""); html.coordinate(Swift.max(1.5, x1 - x0))
        html.raw("\" height=\"\(Self.height - Self.top - Self.bottom)\" data-from=\"\(a)\" data-to=\"\(b)\"")
        if let cause { html.raw(" data-cause=\"\(cause)\"") }
        html.raw("><title>"); html.text(title); html.raw("</title></rect>")
    }

    private func marker(_ html: inout HTMLText, _ w: WindowRecord, state: String, range: (low: Double, high: Double)) {
        let a = w.aggregate
        html.raw("<circle class=\"w \(state)\(w.revision > 0 ? " revised" : "")\" data-start=\"\(w.start)\" data-mean=\"")
        html.raw(String(Self.rounded(a.mean)))
        html.raw("\" cx=\""); html.coordinate(x(w.start + sizeMs / 2))
        html.raw("\" cy=\""); html.coordinate(y(a.mean, range))
        html.raw("\" r=\"\(w.revision > 0 ? 4 : 2.5)\"><title>")
        var tip = "\(DashboardFormat.time(w.start)) – \(DashboardFormat.time(w.end)) UTC, \(state)\n"
        tip += "count \(a.count)"
        if let cadenceMs {
            let expected = Cadence.expected(sizeMs: sizeMs, cadenceMs: cadenceMs)
            tip += " of \(DashboardFormat.value(expected)) expected (\(DashboardFormat.percent(Cadence.completeness(count: a.count, expected: expected))))"
        }
        tip += "\nmean \(DashboardFormat.value(a.mean)), min \(DashboardFormat.value(a.min)), max \(DashboardFormat.value(a.max)), sum \(DashboardFormat.value(a.sum))"
        tip += "\nfirst \(DashboardFormat.value(a.firstValue)) at \(DashboardFormat.time(a.firstTs)), last \(DashboardFormat.value(a.lastValue)) at \(DashboardFormat.time(a.lastTs))"
        if w.revision > 0 { tip += "\nrevised \(w.revision)× by late data (\(w.late) late readings)" }
        html.text(tip)
        html.raw("</title></circle>")
    }
}
