import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Says *why* the cloud's certificate did not verify, so the operator knows which side
/// to fix: it connects once more without trusting anything, takes the certificate chain
/// the cloud serves, and checks its dates and issuer against `uplink.ca_file`.
///
/// ```swift
/// let why = await CloudCertificateDiagnosis.explain(url: "https://cloud:8443", caFile: "/etc/weir/ca.pem")
/// // "the cloud's certificate (CN=cloud) expired on 2026-12-05T01:16:08Z; renew the cloud's tls.cert_file"
/// ```
enum CloudCertificateDiagnosis {
    /// A sentence naming the cause and the key to fix, or `nil` when the chain cannot be
    /// fetched or shows nothing wrong that can be named.
    static func explain(url: String, caFile: String?, now: Date = Date()) async -> String? {
        guard let (host, port) = hostAndPort(url), let chain = await servedChain(host: host, port: port),
              let leaf = chain.first
        else { return nil }
        let name = "the cloud's certificate (\(leaf.subjectText))"
        if leaf.notValidAfter < now {
            return "\(name) expired on \(iso(leaf.notValidAfter)); renew the cloud's tls.cert_file (uplink.ca_file is not the problem)"
        }
        if leaf.notValidBefore > now {
            return "\(name) is not valid before \(iso(leaf.notValidBefore)); check the clocks or the cloud's tls.cert_file"
        }
        guard let caFile, let roots = try? NIOSSLCertificate.fromPEMFile(caFile).compactMap(parse) else { return nil }
        let rootNames = Set(roots.map(\.subject))
        let signedByRoot = chain.contains { rootNames.contains($0.issuer) } || chain.contains { cert in roots.contains { $0.der == cert.der } }
        if !signedByRoot {
            return "\(name) is signed by '\((chain.last ?? leaf).issuerText)', which uplink.ca_file (\(caFile)) does not hold; point uplink.ca_file at that CA"
        }
        return nil
    }

    static func hostAndPort(_ url: String) -> (String, Int)? {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else { return nil }
        return (host, components.port ?? (components.scheme == "https" ? 443 : 80))
    }

    static func parse(_ certificate: NIOSSLCertificate) -> ServedCertificate? {
        guard let der = try? certificate.toDERBytes() else { return nil }
        return ServedCertificate(der: der)
    }

    static func iso(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }

    /// The chain the server at `host:port` presents (leaf first), trusting nothing;
    /// `nil` when no TLS handshake gets that far within 3 s.
    static func servedChain(host: String, port: Int) async -> [ServedCertificate]? {
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let captured = loop.makePromise(of: [[UInt8]].self)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        guard let context = try? NIOSSLContext(configuration: configuration) else { return nil }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(3))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Replaces verification: only records what the server sent, and ends the handshake.
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: host.first?.isNumber == true || host.contains(":") ? nil : host,
                        customVerificationCallback: { certificates, promise in
                            captured.succeed(certificates.compactMap { try? $0.toDERBytes() })
                            promise.succeed(.failed)
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            captured.fail(error)
            return nil
        }
        loop.scheduleTask(in: .seconds(3)) { captured.fail(ChannelError.connectTimeout(.seconds(3))) }
        let ders = try? await captured.futureResult.get()
        try? await channel.close()
        return ders?.compactMap { ServedCertificate(der: $0) }
    }
}
