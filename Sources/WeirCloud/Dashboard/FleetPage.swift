import Foundation
import WeirCore

/// The fleet page (`GET /`): one row per device with its last-seen age, counters,
/// completeness of its last hour and a sparkline of its readings over that hour; a header
/// with the ingest rate and batches per gateway. Sorting (`?sort=&order=`) and the filter
/// (`?q=`) are links and a form, so the page works without JavaScript.
struct FleetPage {
    enum Column: String, CaseIterable {
        case device, lastSeen = "last_seen", readings, duplicates, late, dropped, completeness
        var title: String {
            switch self {
            case .device: "device"
            case .lastSeen: "last seen"
            case .readings: "readings"
            case .duplicates: "duplicates"
            case .late: "late"
            case .dropped: "dropped at edge"
            case .completeness: "completeness 1 h"
            }
        }
    }

    var devices: [DeviceSummary]
    var recent: [String: DeviceRecent]
    var gateways: [GatewayActivity]
    var nowMs: Int64
    var sort: Column = .device
    var descending = false
    var filter = ""

    /// The rows shown: filtered by substring of the name, sorted.
    var rows: [DeviceSummary] {
        let needle = filter.lowercased()
        var shown = needle.isEmpty ? devices : devices.filter { $0.device.lowercased().contains(needle) }
        func key(_ d: DeviceSummary) -> Double {
            switch sort {
            case .device: 0
            case .lastSeen: Double(nowMs - (d.lastSeen ?? 0))
            case .readings: Double(d.readings)
            case .duplicates: Double(d.duplicates)
            case .late: Double(d.late)
            case .dropped: Double(d.droppedAtEdge)
            case .completeness: recent[d.device]?.completeness1h ?? -1
            }
        }
        if sort == .device {
            shown.sort { descending ? $0.device > $1.device : $0.device < $1.device }
        } else {
            shown.sort { a, b in
                let (ka, kb) = (key(a), key(b))
                if ka != kb { return descending ? ka > kb : ka < kb }
                return a.device < b.device
            }
        }
        return shown
    }

    func render() -> [UInt8] {
        let rows = self.rows
        var html = HTMLText(capacity: 2_048 + rows.count * 700)
        Dashboard.head(&html, title: "Weir — fleet")
        html.raw("<header><h1>Weir fleet</h1><p class=\"ingest\">")
        let perMinute = gateways.reduce(0) { $0 + $1.acceptedLastMinute }
        html.raw("ingest <b id=\"ingest-rate\">\(String(format: "%.1f", Double(perMinute) / 60))</b> readings/s (last minute) · ")
        html.raw("\(devices.count) devices · ")
        let readings = devices.reduce(Int64(0)) { $0 + $1.readings }
        html.raw("\(readings) readings</p><table class=\"gateways\"><tr><th>gateway</th><th>batches (last hour)</th><th>readings (last minute)</th><th>last batch</th></tr>")
        for g in gateways {
            html.raw("<tr><td>"); html.text(g.gateway)
            html.raw("</td><td class=\"n\">\(g.batchesLastHour)</td><td class=\"n\">\(g.acceptedLastMinute)</td><td>")
            html.text(g.lastBatchAt.map { DashboardFormat.age(nowMs - $0) + " ago" } ?? "never")
            html.raw("</td></tr>")
        }
        html.raw("</table></header><main>")
        html.raw("<form method=\"get\" action=\"/\" class=\"filter\"><input type=\"search\" name=\"q\" placeholder=\"filter devices\" value=\"")
        html.text(filter)
        html.raw("\"><input type=\"hidden\" name=\"sort\" value=\"\(sort.rawValue)\"><input type=\"hidden\" name=\"order\" value=\"\(descending ? "desc" : "asc")\">")
        html.raw("<button>filter</button> <span class=\"shown\">\(rows.count) of \(devices.count) shown</span></form>")
        html.raw("<table class=\"fleet\" id=\"fleet\"><thead><tr>")
        for column in Column.allCases {
            let active = column == sort
            let nextDescending = active ? !descending : column != .device
            html.raw("<th><a href=\"/?sort=\(column.rawValue)&amp;order=\(nextDescending ? "desc" : "asc")")
            if !filter.isEmpty { html.raw("&amp;q="); html.text(Dashboard.percentEncoded(filter)) }
            html.raw("\">\(column.title)\(active ? (descending ? " ▼" : " ▲") : "")</a></th>")
        }
        html.raw("<th>last hour</th></tr></thead><tbody>")
        for d in rows {
            let recent = self.recent[d.device]
            html.raw("<tr><td><a href=\"/devices/"); html.text(Dashboard.percentEncoded(d.device)); html.raw("\">")
            html.text(d.device)
            html.raw("</a></td><td>")
            html.text(d.lastSeen.map { DashboardFormat.age(nowMs - $0) } ?? "never")
            html.raw("</td><td class=\"n\">\(d.readings)</td><td class=\"n\">\(d.duplicates)</td><td class=\"n\">\(d.late)</td><td class=\"n\(d.droppedAtEdge > 0 ? " warn" : "")\">\(d.droppedAtEdge)</td><td class=\"n\">")
            if let c = recent?.completeness1h {
                html.raw(c < 0.9 ? "<span class=\"warn\">" : "<span>")
                html.raw(DashboardFormat.percent(c))
                html.raw("</span>")
            } else {
                html.raw("–")
            }
            html.raw("</td><td>")
            sparkline(&html, recent?.activity ?? [])
            html.raw("</td></tr>")
        }
        html.raw("</tbody></table></main></body></html>")
        return html.bytes
    }

    /// Readings per bucket over the hour as a 90×18 polyline.
    private func sparkline(_ html: inout HTMLText, _ activity: [Int64]) {
        guard let peak = activity.max(), peak > 0 else {
            html.raw("<svg class=\"spark\" width=\"90\" height=\"18\"></svg>")
            return
        }
        html.raw("<svg class=\"spark\" width=\"90\" height=\"18\"><polyline points=\"")
        let step = 90.0 / Double(max(1, activity.count - 1))
        for (i, n) in activity.enumerated() {
            if i > 0 { html.raw(" ") }
            html.coordinate(Double(i) * step)
            html.raw(",")
            html.coordinate(17 - Double(n) / Double(peak) * 16)
        }
        html.raw("\"/></svg>")
    }
}
