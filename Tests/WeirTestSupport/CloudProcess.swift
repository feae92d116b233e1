import Foundation

/// A real `weir-cloud serve` process (`.build/debug/weir-cloud`) on a loopback port with
/// a SQLite store in a test folder (or the `store` URL given, e.g. a private PostgreSQL). Stop it with `stop()` / `kill()`; `withCloud` always
/// stops it.
///
/// ```swift
/// let cloud = try await CloudProcess.start(in: dir.path, tokens: ["gw-1": "secret"])
/// // cloud.url == "http://127.0.0.1:<port>"
/// await cloud.stop()
/// ```
public final class CloudProcess: Sendable {
    public let port: Int
    public let directory: String
    public let configPath: String
    public let storePath: String
    public let process: ManagedProcess

    /// Whether it serves HTTPS (`tls:` in its config).
    public let https: Bool
    /// For HTTPS clouds started with `tls:`: what a client trusts, and under mutual TLS the
    /// client certificate the test reads with (`readerCertificate`).
    public let clientTLS: HTTPGet.TLS?
    /// `Authorization` for the query API with ``readerToken``.
    public static let readerHeaders = ["Authorization": "Bearer \(readerToken)"]
    /// `http://127.0.0.1:<port>` (`https://` with TLS).
    public var url: String { "\(https ? "https" : "http")://127.0.0.1:\(port)" }

    /// The token of the reader every started cloud with gateway tokens has (devices `*`),
    /// unless the test's `extraConfig` brings its own `readers:`. ``HTTPGet/json(_:_:token:)``
    /// sends it by default.
    public static let readerToken = "test-reader-token"

    /// Starts weir-cloud. `tokens` maps gateway names to plain tokens (their SHA-256 goes
    /// into the config, with a reader for ``readerToken``); with none, the server runs with
    /// `--insecure-no-auth`. Pass the same `port` and `directory` again to restart it on
    /// its old store. `gatewayOptions` adds YAML lines to a gateway's entry
    /// (`max_readings_per_second: 100`, `devices: ["d*"]`). `extraConfig` is appended to the YAML (a `tls:` block makes it HTTPS).
    public static func start(
        in directory: String,
        port: Int? = nil,
        tokens: [String: String] = [:],
        gatewayOptions: [String: [String]] = [:],
        windows: [String] = ["60s"],
        extraConfig: String = "",
        tls: TestCertificates? = nil,
        clientCAFile: String? = nil,
        readerCertificate: IssuedCertificate? = nil,
        environment: [String: String] = [:],
        store: String? = nil
    ) async throws -> CloudProcess {
        let port = try port ?? FreePort.allocate()
        let storePath = "\(directory)/weir-cloud.db"
        var config = """
        listen: 127.0.0.1:\(port)
        store: \(store ?? "sqlite:\(storePath)")
        windows: [\(windows.joined(separator: ", "))]

        """
        if !tokens.isEmpty {
            config += "gateways:\n"
            for (gateway, token) in tokens.sorted(by: { $0.key < $1.key }) {
                config += "  \(gateway):\n    token_sha256: \"\(try sha256Hex(token))\"\n"
                for option in gatewayOptions[gateway] ?? [] { config += "    \(option)\n" }
            }
        }
        if !tokens.isEmpty && !extraConfig.contains("readers:") {
            config += "readers:\n  test-reader:\n    token_sha256: \"\(try sha256Hex(readerToken))\"\n"
        }
        if let tls {
            config += "tls:\n  cert_file: \(tls.serverCertFile)\n  key_file: \(tls.serverKeyFile)\n"
            if let clientCAFile { config += "  client_ca_file: \(clientCAFile)\n" }
        }
        config += extraConfig
        let configPath = "\(directory)/weir-cloud-\(port).yaml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        var arguments = ["serve", "--config", configPath]
        if tokens.isEmpty { arguments.append("--insecure-no-auth") }
        let process = try ManagedProcess.start(
            name: "weir-cloud", executable: PackagePaths.program("weir-cloud"),
            arguments: arguments, environment: environment, logDirectory: directory)
        do {
            try await process.waitForOutput(containing: "weir-cloud listening on", timeout: .seconds(30))
        } catch {
            await process.killNow()
            throw error
        }
        return CloudProcess(port: port, directory: directory, configPath: configPath, storePath: storePath, process: process,
                            https: tls != nil || extraConfig.contains("tls:"), clientTLS: tls.map { HTTPGet.TLS(caFile: $0.caFile, clientCertFile: readerCertificate?.certFile, clientKeyFile: readerCertificate?.keyFile) })
    }

    private init(port: Int, directory: String, configPath: String, storePath: String, process: ManagedProcess, https: Bool,
                 clientTLS: HTTPGet.TLS?) {
        self.https = https
        self.clientTLS = clientTLS
        self.port = port
        self.directory = directory
        self.configPath = configPath
        self.storePath = storePath
        self.process = process
    }

    /// SIGTERM (SIGKILL after 10 s).
    public func stop() async { await process.terminate() }

    /// SIGKILL now.
    public func kill() async { await process.killNow() }
}

/// Runs `body` with a started weir-cloud and always stops it afterwards.
public func withCloud<T>(
    in directory: String, tokens: [String: String] = [:], windows: [String] = ["60s"],
    _ body: (CloudProcess) async throws -> T
) async throws -> T {
    let cloud = try await CloudProcess.start(in: directory, tokens: tokens, windows: windows)
    do {
        let result = try await body(cloud)
        await cloud.stop()
        return result
    } catch {
        await cloud.stop()
        throw error
    }
}

/// SHA-256 of `text` in lowercase hex (through the system's `sha256sum`, as an operator
/// would compute it; run with a blocking `waitpid`, see ``ManagedProcess/run``).
public func sha256Hex(_ text: String) throws -> String {
    let result = try ManagedProcess.run(executable: "/bin/sh", arguments: ["-c", "printf %s \"$0\" | sha256sum", text])
    guard result.status == 0, let hex = result.stdout.split(separator: " ").first, hex.count == 64 else {
        throw TestSupportError("sha256sum gave no digest: \(result.stderr)")
    }
    return String(hex)
}
