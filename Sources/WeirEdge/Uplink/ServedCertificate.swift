import Foundation
import NIOSSL
import SwiftASN1

/// What the certificate diagnosis needs of a certificate the cloud serves: its subject
/// and issuer names and its validity.
///
/// Read with SwiftASN1 and NIOSSL, which the edge links anyway, rather than with
/// swift-certificates: its X509 and Crypto modules added about 2 MB of code pages to every
/// running edge (and took the edge's peak RSS past its 50 MB budget) for a diagnosis that
/// runs only after a failed handshake.
struct ServedCertificate: Equatable, Sendable {
    /// The whole certificate, DER.
    var der: [UInt8]
    /// The subject's and the issuer's `Name`, DER (compared as bytes, as X.509 path building does).
    var subject: [UInt8]
    var issuer: [UInt8]
    var notValidBefore: Date
    var notValidAfter: Date

    /// `nil` when `der` is not a certificate.
    init?(der: [UInt8]) {
        // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
        // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity, subject, ... }
        guard let root = try? DER.parse(der), case .constructed(let certificate) = root.content,
              let tbs = certificate.first(where: { _ in true }), case .constructed(let fields) = tbs.content
        else { return nil }
        let universal = fields.filter { $0.identifier.tagClass == .universal }
        guard universal.count >= 5, let parsed = try? NIOSSLCertificate(bytes: der, format: .der) else { return nil }
        self.der = der
        issuer = Array(universal[2].encodedBytes)
        subject = Array(universal[4].encodedBytes)
        notValidBefore = Date(timeIntervalSince1970: TimeInterval(parsed.notValidBefore))
        notValidAfter = Date(timeIntervalSince1970: TimeInterval(parsed.notValidAfter))
    }

    /// The subject as text, most specific part first (`CN=cloud,O=Weir`).
    var subjectText: String { Self.text(ofName: subject) }
    /// The issuer as text.
    var issuerText: String { Self.text(ofName: issuer) }

    private static let attributeNames = [
        "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
        "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "emailAddress",
    ]

    /// A DER `Name` (SEQUENCE OF SET OF { type, value }) in RFC 4514 order.
    static func text(ofName der: [UInt8]) -> String {
        guard let name = try? DER.parse(der), case .constructed(let rdns) = name.content else { return "?" }
        var parts: [String] = []
        for rdn in rdns {
            guard case .constructed(let attributes) = rdn.content else { continue }
            for attribute in attributes {
                guard case .constructed(let pair) = attribute.content else { continue }
                var fields = pair.makeIterator()
                guard let typeNode = fields.next(), let valueNode = fields.next(),
                      let type = try? ASN1ObjectIdentifier(derEncoded: typeNode),
                      case .primitive(let bytes) = valueNode.content
                else { continue }
                parts.append("\(attributeNames[type.description] ?? type.description)=\(String(decoding: bytes, as: UTF8.self))")
            }
        }
        return parts.reversed().joined(separator: ",")
    }
}
