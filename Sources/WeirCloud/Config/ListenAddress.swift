import WeirCore

/// A `HOST:PORT` to listen on (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:0`).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    /// `0` asks the system for a free port.
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`; throws naming the problem.
    public static func parse(_ text: String) throws(WeirError) -> ListenAddress {
        func bad(_ why: String) -> WeirError {
            WeirError(.badConfig, "listen address '\(text.prefix(80))' \(why) (write HOST:PORT, e.g. 127.0.0.1:8080)")
        }
        guard let colon = text.lastIndex(of: ":") else { throw bad("has no port") }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw bad("has no host") }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw bad("has no valid port (0–65535)")
        }
        return ListenAddress(host: host, port: port)
    }

    /// Whether only this machine can connect (`127.x.x.x`, `::1`, `localhost`).
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
