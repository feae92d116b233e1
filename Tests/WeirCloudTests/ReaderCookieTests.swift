import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import WeirCloud
import WeirCore

/// A browser reads the dashboard with a reader token given once as `?token=`: the server
/// answers 303 to the same page without it and sets an HttpOnly cookie that later pages
/// and API calls are read with.
@Suite struct ReaderCookieTests {
    @Test func tokenOnceThenCookie() async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient { client in
            try await client.post(Batch(gateway: "gw-1", id: "b1", readings: readings("d1", [(t0 + 1_000, 1)])))
            let cookie = try await client.execute(uri: "/devices/d1?range=1h&token=\(CloudHarness.readerToken)", method: .get) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/devices/d1?range=1h")
                let set = response.headers[.setCookie] ?? ""
                #expect(set.hasPrefix("weir_reader=\(CloudHarness.readerToken);"))
                #expect(set.contains("HttpOnly"))
                return String(set.split(separator: ";")[0])
            }
            try await client.execute(uri: "/devices/d1?range=1h", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
            }
            try await client.execute(uri: "/v1/devices", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .ok)
            }
            // No cookie, a wrong token, a wrong cookie: 401, and no cookie is set.
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/?token=not-a-reader", method: .get) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.setCookie] == nil)
            }
            try await client.execute(uri: "/", method: .get, headers: [.cookie: "weir_reader=not-a-reader"]) { response in
                #expect(response.status == .unauthorized)
            }
        }
    }
}
