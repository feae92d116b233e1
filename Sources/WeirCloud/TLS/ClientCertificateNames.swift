import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// The names a TLS client certificate gives its holder: the subject's common names and
/// the DNS and URI subject alternative names. Under mutual TLS a gateway's certificate
/// must carry its gateway name among them.
enum ClientCertificateNames {
    /// The names of the verified client certificate of the connection, `nil` when the
    /// connection has no TLS handler or no client certificate.
    static func ofPeer(on channel: any Channel) async -> [String]? {
        try? await channel.eventLoop.submit { () -> [String]? in
            guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
                  let certificate = handler.peerCertificate
            else { return nil }
            return names(of: certificate)
        }.get()
    }

    static func names(of certificate: NIOSSLCertificate) -> [String] {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return [] }
        var names: [String] = []
        for rdn in parsed.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value) { names.append(name) }
            }
        }
        if let alternatives = try? parsed.extensions.subjectAlternativeNames {
            for name in alternatives {
                switch name {
                case .dnsName(let text), .uniformResourceIdentifier(let text): names.append(text)
                default: break
                }
            }
        }
        return names
    }

    static func serialHex(of certificate: NIOSSLCertificate) throws -> String {
        let parsed = try Certificate(derEncoded: try certificate.toDERBytes())
        return parsed.serialNumber.bytes.map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}
