import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import WeirCloud
import WeirCore

/// The dashboard's pages without a browser: what they list, sorting and filtering by links,
/// and answers for unknown devices and bad choices.
@Suite struct DashboardRouteTests {
    @Test func fleetSortsFiltersAndLinksDevices() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            for (i, device) in ["alpha", "beta.x/1", "gamma"].enumerated() {
                let points = (0..<(10 * (i + 1))).map { (t0 + Int64($0) * 10_000, Double($0)) }
                #expect(try await client.post(Batch(gateway: "gw-1", id: "b\(i)", readings: readings(device, points))).0 == .ok)
            }
            try await client.execute(uri: "/?sort=readings&order=desc", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                let html = String(buffer: response.body)
                let order = ["gamma", "beta.x/1", "alpha"].map { html.range(of: ">\($0)</a>")?.lowerBound }
                #expect(order.allSatisfy { $0 != nil } && order[0]! < order[1]! && order[1]! < order[2]!, "sorted by readings")
                #expect(html.contains("href=\"/devices/beta.x%2F1\""))
            }
            try await client.execute(uri: "/?q=alp", method: .get, headers: CloudHarness.readerHeaders) { response in
                let html = String(buffer: response.body)
                #expect(html.contains(">alpha</a>") && !html.contains(">gamma</a>") && html.contains("1 of 3 shown"))
            }
            try await client.execute(uri: "/devices/gamma?range=1h", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok)
                let html = String(buffer: response.body)
                #expect(html.contains("data-metric=\"temp\"") && html.contains("data-points=\"5\""))
                #expect(html.contains("<script src=\"/assets/live.js\">"))
            }
            try await client.execute(uri: "/devices/beta.x%2F1", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok, "a device name with a slash, percent-encoded in the link")
            }
            try await client.execute(uri: "/devices/nobody", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/devices/gamma?size=7s", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/assets/live.js", method: .get, headers: CloudHarness.readerHeaders) { response in
                #expect(response.status == .ok && String(buffer: response.body).contains("EventSource"))
            }
        }
    }
}
