import Foundation

extension MosquittoBroker {
    /// Starts mosquitto with a TLS listener (and no plain one) on a free loopback port,
    /// serving `certificates`' server certificate. Clients connect with the CA file,
    /// e.g. `mqtts://127.0.0.1:<port>`.
    public static func startTLS(in directory: String, certificates: TestCertificates) async throws -> MosquittoBroker {
        try await start(in: directory, extraConfig: certificates.mosquittoListenerConfig)
    }

    /// `mqtts://127.0.0.1:<port>`, for a broker started with `startTLS`.
    public var tlsURL: String { "mqtts://127.0.0.1:\(port)" }

    /// Publishes with `mosquitto_pub -q 1 --cafile caFile` (the C client over TLS), one
    /// message per line of `lines` on `topic`. Returns when the broker acknowledged every
    /// message; throws (with mosquitto_pub's words) if the TLS connection fails.
    public func publishWithMosquittoPub(topic: String, lines: [String], caFile: String) async throws {
        let input = "\(directory)/pub-\(UInt32.random(in: 0...UInt32.max)).txt"
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: input) }
        try await runProgram(try PackagePaths.systemProgram("mosquitto_pub"),
                             ["-h", "127.0.0.1", "-p", "\(port)", "--cafile", caFile, "-q", "1", "-t", topic, "-l"],
                             stdin: input, logDirectory: directory)
    }
}
