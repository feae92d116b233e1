import Foundation

/// A throwaway certificate authority and a server certificate it signed for
/// `127.0.0.1` / `localhost`, made with the system's `openssl` in a test folder: what a
/// TLS listener (mosquitto's `cafile`/`certfile`/`keyfile`) and its clients need.
///
/// ```swift
/// let certs = try await TestCertificates.make(in: dir.path)
/// // certs.caFile, certs.serverCertFile, certs.serverKeyFile (PEM)
/// let other = try await TestCertificates.make(in: dir.path, name: "stranger")   // a CA that signed nothing we use
/// ```
public struct TestCertificates: Sendable {
    /// The CA's certificate (PEM): what clients trust.
    public let caFile: String
    /// The server's certificate (PEM), signed by the CA, for IP 127.0.0.1 and DNS localhost.
    public let serverCertFile: String
    /// The server's private key (PEM, unencrypted).
    public let serverKeyFile: String

    /// Makes a CA named `name` and a server certificate signed by it, valid for two days,
    /// in `directory` (files `<name>-ca.pem`, `<name>-server.pem`, `<name>-server.key`).
    /// Elliptic-curve keys (P-256): quick to generate on a loaded machine.
    public static func make(in directory: String, name: String = "weir-test") async throws -> TestCertificates {
        let openssl = try PackagePaths.systemProgram("openssl")
        let base = "\(directory)/\(name)"
        let ca = TestCertificates(caFile: "\(base)-ca.pem", serverCertFile: "\(base)-server.pem", serverKeyFile: "\(base)-server.key")
        let extensions = "\(base)-server.ext"
        try "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
            .write(toFile: extensions, atomically: true, encoding: .utf8)
        // The CA: a self-signed certificate.
        try await runProgram(openssl, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                       "-keyout", "\(base)-ca.key", "-out", ca.caFile, "-days", "2", "-subj", "/CN=\(name) test CA"],
                             logDirectory: directory)
        // The server: a key and a request, signed by the CA with the loopback names.
        try await runProgram(openssl, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                       "-keyout", ca.serverKeyFile, "-out", "\(base)-server.csr", "-subj", "/CN=localhost"],
                             logDirectory: directory)
        try await runProgram(openssl, ["x509", "-req", "-in", "\(base)-server.csr", "-CA", ca.caFile, "-CAkey", "\(base)-ca.key",
                                       "-CAcreateserial", "-out", ca.serverCertFile, "-days", "2", "-extfile", extensions],
                             logDirectory: directory)
        return ca
    }

    /// mosquitto config lines for a TLS listener with this server certificate (append them
    /// after the `listener` line they belong to).
    public var mosquittoListenerConfig: String {
        "cafile \(caFile)\ncertfile \(serverCertFile)\nkeyfile \(serverKeyFile)\n"
    }
}
