import Foundation
import NIOSSL
import Testing
@testable import WeirEdge
import WeirTestSupport

/// The certificate diagnosis reads names and dates from what the cloud serves.
@Suite struct ServedCertificateTests {
    @Test func namesAndDatesOfAnIssuedCertificate() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("weir-served-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let certs = try await TestCertificates.make(in: dir, name: "served")
        let expired = try await certs.issue("old", commonName: "cloud.example.com", days: -1)

        func load(_ file: String) throws -> ServedCertificate {
            let pem = try #require(NIOSSLCertificate.fromPEMFile(file).first)
            return try #require(CloudCertificateDiagnosis.parse(pem))
        }
        let ca = try load(certs.caFile)
        let server = try load(certs.serverCertFile)
        let old = try load(expired.certFile)

        #expect(ca.subjectText == "CN=served test CA")
        #expect(ca.issuer == ca.subject, "a CA made by openssl req -x509 signs itself")
        #expect(server.subjectText == "CN=localhost")
        #expect(server.issuer == ca.subject)
        #expect(server.issuerText == "CN=served test CA")
        #expect(server.notValidBefore < Date() && Date() < server.notValidAfter)
        #expect(old.subjectText == "CN=cloud.example.com")
        #expect(old.notValidAfter < Date(), "issued with days: -1")
        #expect(ServedCertificate(der: [0x30, 0x03, 0x02, 0x01, 0x01]) == nil, "not a certificate")
    }
}
