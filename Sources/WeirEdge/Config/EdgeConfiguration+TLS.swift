import Foundation
import NIOSSL
import WeirCore
import WeirSupport

extension EdgeConfiguration {
    /// `uplink.ca_file`, `uplink.client_cert_file`, `uplink.client_key_file`: each file
    /// must exist and parse as PEM now, so a typo fails at start naming its key.
    static func loadUplinkTLS(_ source: ConfigSource, into uplink: inout Uplink) throws(WeirError) {
        uplink.caFile = source.string("uplink.ca_file")
        uplink.clientCertFile = source.string("uplink.client_cert_file")
        uplink.clientKeyFile = source.string("uplink.client_key_file")
        if let caFile = uplink.caFile {
            try readable(source, "uplink.ca_file", caFile)
            do {
                if try NIOSSLCertificate.fromPEMFile(caFile).isEmpty { throw source.problem("uplink.ca_file", "\(caFile) holds no certificate") }
            } catch let error as WeirError {
                throw error
            } catch {
                throw source.problem("uplink.ca_file", "\(caFile) is not a PEM certificate file (\(error))")
            }
        }
        switch (uplink.clientCertFile, uplink.clientKeyFile) {
        case (let cert?, let key?):
            try readable(source, "uplink.client_cert_file", cert)
            try readable(source, "uplink.client_key_file", key)
            do { _ = try NIOSSLCertificate.fromPEMFile(cert) } catch {
                throw source.problem("uplink.client_cert_file", "\(cert) is not a PEM certificate file (\(error))")
            }
            do { _ = try NIOSSLPrivateKey(file: key, format: .pem) } catch {
                throw source.problem("uplink.client_key_file", "\(key) is not an unencrypted PEM private key (\(error))")
            }
        case (nil, nil):
            break
        case (nil, _):
            throw source.problem("uplink.client_cert_file", "uplink.client_key_file is set but uplink.client_cert_file is not; mutual TLS needs both")
        case (_, nil):
            throw source.problem("uplink.client_key_file", "uplink.client_cert_file is set but uplink.client_key_file is not; mutual TLS needs both")
        }
        if uplink.url.hasPrefix("http://"), uplink.caFile != nil || uplink.clientCertFile != nil {
            throw source.problem("uplink.url", "'\(uplink.url.prefix(80))' is plain http:// but uplink TLS files are set; write https://")
        }
    }

    private static func readable(_ source: ConfigSource, _ key: String, _ path: String) throws(WeirError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw source.problem(key, "\(path) does not exist")
        }
        guard !isDirectory.boolValue, FileManager.default.isReadableFile(atPath: path) else {
            throw source.problem(key, "\(path) is not a readable file")
        }
    }

    /// The uplink's client TLS settings: trust `ca_file` only (when set) and present the
    /// client certificate (when set).
    public func uplinkTLSConfiguration() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caFile = uplink.caFile {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        }
        if let cert = uplink.clientCertFile, let key = uplink.clientKeyFile {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        }
        return tls
    }
}
