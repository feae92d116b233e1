import Foundation

/// A certificate and its key (PEM files) issued by a ``TestCertificates`` CA.
public struct IssuedCertificate: Sendable {
    public let certFile: String
    public let keyFile: String

    public init(certFile: String, keyFile: String) {
        self.certFile = certFile
        self.keyFile = keyFile
    }

    /// The certificate's serial number in upper-case hex, as `openssl x509 -serial` prints it.
    public func serial() async throws -> String {
        try await TestCertificates.serial(ofPEMFile: certFile)
    }
}

extension TestCertificates {
    /// The same CA with another server certificate and key (PEM files).
    public func serving(_ server: IssuedCertificate) -> TestCertificates {
        TestCertificates(caFile: caFile, serverCertFile: server.certFile, serverKeyFile: server.keyFile)
    }

    /// What a certificate is for.
    public enum Usage: String, Sendable {
        case server = "serverAuth"
        case client = "clientAuth"
    }

    /// The CA's private key (next to its certificate).
    public var caKeyFile: String { String(caFile.dropLast("-ca.pem".count)) + "-ca.key" }

    /// Issues another certificate from this CA: `commonName` as subject, `alternativeNames`
    /// as SAN (`DNS:localhost`, `IP:127.0.0.1`; none when empty), valid `days` from now
    /// (`-1` gives one that expired yesterday). Files `<name>.pem` / `<name>.key` next to the CA.
    public func issue(_ name: String, commonName: String, alternativeNames: [String] = [], usage: Usage = .server,
                      days: Int = 2) async throws -> IssuedCertificate {
        let openssl = try PackagePaths.systemProgram("openssl")
        let directory = (caFile as NSString).deletingLastPathComponent
        let base = "\(directory)/\(name)"
        let issued = IssuedCertificate(certFile: "\(base).pem", keyFile: "\(base).key")
        var extensions = "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = \(usage.rawValue)\n"
        if !alternativeNames.isEmpty { extensions += "subjectAltName = \(alternativeNames.joined(separator: ", "))\n" }
        try extensions.write(toFile: "\(base).ext", atomically: true, encoding: .utf8)
        try await runProgram(openssl, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                       "-keyout", issued.keyFile, "-out", "\(base).csr", "-subj", "/CN=\(commonName)"],
                             logDirectory: directory)
        try await runProgram(openssl, ["x509", "-req", "-in", "\(base).csr", "-CA", caFile, "-CAkey", caKeyFile,
                                       "-CAcreateserial", "-out", issued.certFile, "-days", "\(days)", "-extfile", "\(base).ext"],
                             logDirectory: directory)
        return issued
    }

    /// The serial number of the first certificate in a PEM file (upper-case hex).
    public static func serial(ofPEMFile path: String) async throws -> String {
        let openssl = try PackagePaths.systemProgram("openssl")
        let output = try await capture(openssl, ["x509", "-in", path, "-noout", "-serial"])
        return try serialLine(output)
    }

    /// The serial number of the certificate a TLS server on `127.0.0.1:port` serves now
    /// (`openssl s_client`), upper-case hex.
    public static func servedSerial(port: Int) async throws -> String {
        let openssl = try PackagePaths.systemProgram("openssl")
        let served = try await capture(openssl, ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost"], input: "")
        guard let begin = served.range(of: "-----BEGIN CERTIFICATE-----"),
              let end = served.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<served.endIndex)
        else { throw TestSupportError("openssl s_client showed no certificate:\n\(served.prefix(2000))") }
        let pem = String(served[begin.lowerBound..<end.upperBound]) + "\n"
        let path = NSTemporaryDirectory() + "served-\(UUID().uuidString).pem"
        try pem.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await serial(ofPEMFile: path)
    }

    private static func serialLine(_ output: String) throws -> String {
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("serial=") }) else {
            throw TestSupportError("no serial in openssl's output: \(output.prefix(300))")
        }
        return String(line.dropFirst("serial=".count)).uppercased()
    }

    /// Runs a program and returns its stdout and stderr together.
    static func capture(_ program: String, _ arguments: [String], input: String? = nil) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try? stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
