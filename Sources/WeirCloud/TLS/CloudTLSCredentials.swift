import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization
import WeirCore

/// weir-cloud's TLS material, loaded from `tls:` files and reloadable while serving.
///
/// The server's `TLSConfiguration` carries a context callback that hands every new
/// handshake the certificate and key held here; ``reload()`` reads the files again and
/// swaps them, so connections already open keep their session and new ones get the new
/// certificate.
///
/// ```swift
/// let credentials = try CloudTLSCredentials(files: config.tls!)
/// let server = try HTTPServerBuilder.tls(.http1(), tlsConfiguration: credentials.serverConfiguration())
/// try credentials.reload()   // on SIGHUP
/// ```
public final class CloudTLSCredentials: Sendable {
    struct Material: @unchecked Sendable {
        // NIOSSLCertificate/NIOSSLPrivateKey are immutable wrappers of BoringSSL objects
        // that BoringSSL reference-counts and only reads after creation.
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    public let files: CloudTLSConfiguration
    private let material: Mutex<Material>
    private let clientCAs: [NIOSSLCertificate]?

    /// Loads and checks the files; throws naming the config key of a file that is
    /// missing, unreadable, not PEM, or a key that does not belong to the certificate.
    public init(files: CloudTLSConfiguration) throws(WeirError) {
        self.files = files
        let loaded = try Self.load(files)
        material = Mutex(loaded)
        if let caFile = files.clientCAFile {
            let cas = try Self.certificates(caFile, key: "tls.client_ca_file")
            clientCAs = cas
        } else {
            clientCAs = nil
        }
        // Builds a context once, so a key that does not match shows now, not at the first handshake.
        do {
            _ = try NIOSSLContext(configuration: serverConfiguration())
        } catch {
            throw WeirError(.badConfig, "config keys 'tls.cert_file'/'tls.key_file': \(files.certFile) and \(files.keyFile) cannot serve TLS together (does the key belong to the certificate?): \(error)")
        }
    }

    /// Whether gateways must present a client certificate.
    public var requiresClientCertificates: Bool { clientCAs != nil }

    /// The server configuration: the loaded certificate and key, client certificates
    /// required and checked against `client_ca_file` when set, and the callback that
    /// hands each handshake the current certificate.
    public func serverConfiguration() -> TLSConfiguration {
        let current = material.withLock { $0 }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: current.chain.map { .certificate($0) },
            privateKey: .privateKey(current.key))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAs {
            configuration.trustRoots = .certificates(clientCAs)
            configuration.certificateVerification = .noHostnameVerification
            configuration.sendCANameList = true
        }
        // Holds the credentials for as long as the server's configuration lives (no cycle:
        // the credentials do not keep the configuration).
        configuration.sslContextCallback = { _, promise in
            let current = self.material.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = current.chain.map { .certificate($0) }
            override.privateKey = .privateKey(current.key)
            promise.succeed(override)
        }
        return configuration
    }

    /// Reads the certificate and key files again and, once both load and belong
    /// together, serves them to new connections. On any problem the old ones stay.
    public func reload() throws(WeirError) {
        let loaded = try Self.load(files)
        var probe = TLSConfiguration.makeServerConfiguration(
            certificateChain: loaded.chain.map { .certificate($0) }, privateKey: .privateKey(loaded.key))
        probe.minimumTLSVersion = .tlsv12
        do {
            _ = try NIOSSLContext(configuration: probe)
        } catch {
            throw WeirError(.badConfig, "config keys 'tls.cert_file'/'tls.key_file': \(files.certFile) and \(files.keyFile) cannot serve TLS together (does the key belong to the certificate?): \(error)")
        }
        material.withLock { $0 = loaded }
    }

    /// The leaf certificate being served: its serial number in hex (for logs).
    public var servedSerial: String {
        let leaf = material.withLock { $0.chain.first }
        return leaf.flatMap { try? ClientCertificateNames.serialHex(of: $0) } ?? "?"
    }

    static func load(_ files: CloudTLSConfiguration) throws(WeirError) -> Material {
        let chain = try certificates(files.certFile, key: "tls.cert_file")
        try readable(files.keyFile, key: "tls.key_file")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
        } catch {
            throw WeirError(.badConfig, "config key 'tls.key_file': \(files.keyFile) is not an unencrypted PEM private key (\(error))")
        }
        return Material(chain: chain, key: key)
    }

    static func certificates(_ path: String, key: String) throws(WeirError) -> [NIOSSLCertificate] {
        try readable(path, key: key)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw WeirError(.badConfig, "config key '\(key)': \(path) is not a PEM certificate file (\(error))")
        }
        guard !chain.isEmpty else { throw WeirError(.badConfig, "config key '\(key)': \(path) holds no certificate") }
        return chain
    }

    static func readable(_ path: String, key: String) throws(WeirError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw WeirError(.badConfig, "config key '\(key)': \(path) does not exist")
        }
        guard !isDirectory.boolValue, FileManager.default.isReadableFile(atPath: path) else {
            throw WeirError(.badConfig, "config key '\(key)': \(path) is not a readable file")
        }
    }
}
