import Foundation
import PostgresNIO
import WeirCore

/// A `postgres://user[:password]@host[:port]/database` URL, parsed into a client
/// configuration. `?sslmode=require` asks for TLS (the server's certificate is verified).
struct PostgresLocation: Sendable {
    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String
    var requireTLS: Bool

    init(_ text: String) throws(WeirError) {
        guard let components = URLComponents(string: text),
              components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw WeirError(.badConfig, "store '\(text.prefix(80))' is not a postgres://user@host:port/database URL")
        }
        guard let host = components.host, !host.isEmpty else {
            throw WeirError(.badConfig, "store URL \(Self.redacted(text)) names no host (postgres://user@host:port/database)")
        }
        guard let user = components.user, !user.isEmpty else {
            throw WeirError(.badConfig, "store URL \(Self.redacted(text)) names no user (postgres://user@host:port/database)")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else {
            throw WeirError(.badConfig, "store URL \(Self.redacted(text)) names no database (postgres://user@host:port/database)")
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else {
            throw WeirError(.badConfig, "store URL \(Self.redacted(text)) has port \(port), outside 1-65535")
        }
        var requireTLS = false
        for item in components.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", "require"?), ("sslmode", "verify-full"?): requireTLS = true
            case ("sslmode", "disable"?): requireTLS = false
            default:
                throw WeirError(.badConfig, "store URL \(Self.redacted(text)): unknown option \(item.name)=\(item.value ?? "") (known: sslmode=disable|require)")
            }
        }
        self.host = host
        self.port = port
        self.user = user
        self.password = components.password
        self.database = database
        self.requireTLS = requireTLS
    }

    var configuration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database,
            tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.maximumConnections = 16
        return configuration
    }

    /// The URL without its password, for messages.
    var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return String(text.prefix(80)) }
        if components.password != nil { components.password = "***" }
        return components.string ?? String(text.prefix(80))
    }
}
