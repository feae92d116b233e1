import Foundation

/// A private PostgreSQL server for tests (`scripts/pg-private`): its own cluster in a
/// temporary folder, on a free loopback port, run as the `postgres` user when the tests
/// run as root. One server serves a whole test process (``shared()``); each test takes a
/// fresh database of its own (``createDatabase()``). It is stopped and removed when the
/// process exits, and by ``stop()``.
///
/// ```swift
/// let url = try PostgresServer.shared().createDatabase()   // postgres://weir@127.0.0.1:PORT/weir_...
/// ```
public final class PostgresServer: Sendable {
    public let port: Int
    public let directory: String

    /// Whether PostgreSQL's server programs are installed (scripts/setup installs them).
    public static var isInstalled: Bool {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.contains { FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\($0)/bin/initdb") }
    }

    /// Starts a new server. `fsync: false` for tests that never crash the server itself.
    public static func start(fsync: Bool = false) throws -> PostgresServer {
        guard isInstalled else {
            throw TestSupportError("PostgreSQL's server is not installed: apt-get install postgresql (scripts/setup does)")
        }
        let port = try FreePort.allocate()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("weir-pg-\(UUID().uuidString)").path
        try run(["start", directory, "\(port)"], environment: ["PG_FSYNC": fsync ? "on" : "off"])
        let server = PostgresServer(port: port, directory: directory)
        started.withLock { $0.append(directory) }
        return server
    }

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
    }

    /// The server shared by this test process, started on first use.
    public static func shared() throws -> PostgresServer {
        try sharedServer.withLock { server in
            if let server { return server }
            let started = try start()
            server = started
            return started
        }
    }

    /// The URL of database `name` on this server.
    public func url(database: String = "weir") -> String {
        "postgres://weir@127.0.0.1:\(port)/\(database)"
    }

    /// Creates an empty database and returns its URL.
    public func createDatabase() throws -> String {
        let name = "weir_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        try psql("CREATE DATABASE \(name)")
        return url(database: name)
    }

    /// Runs one SQL statement with psql and returns its unaligned, tuples-only output.
    @discardableResult
    public func psql(_ sql: String, database: String = "weir") throws -> String {
        let result = try ManagedProcess.run(executable: try PackagePaths.systemProgram("psql"),
                                            arguments: [url(database: database), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard result.status == 0 else { throw TestSupportError("psql \(sql.prefix(80)): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server (fast shutdown), keeping its files, as an outage would.
    public func pause() throws { try Self.run(["pause", directory]) }

    /// Starts a paused server again on the same port.
    public func resume() throws { try Self.run(["resume", directory]) }

    /// Stops the server at once and removes its files.
    public func stop() {
        try? Self.run(["stop", directory])
        Self.started.withLock { $0.removeAll { $0 == directory } }
    }

    private static let sharedServer = LockedValue<PostgresServer?>(nil)
    /// Servers to stop when the process exits.
    private static let started: LockedValue<[String]> = {
        atexit {
            for directory in PostgresServer.started.withLock({ $0 }) { try? PostgresServer.run(["stop", directory]) }
        }
        return LockedValue([])
    }()

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws {
        let result = try ManagedProcess.run(executable: "\(PackagePaths.root)/scripts/pg-private", arguments: arguments,
                                            environment: environment)
        guard result.status == 0 else {
            throw TestSupportError("scripts/pg-private \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
    }
}

/// A value behind a lock (NSLock: Synchronization's Mutex is not Sendable-storable in a static here).
final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
