import Foundation

/// A fresh directory under the system temp dir, removed by `remove()` (or use
/// `withTemporaryDirectory`, which always removes it).
public struct TemporaryDirectory: Sendable {
    public let path: String

    /// Creates `/tmp/weir-<prefix>-XXXXXX`.
    public init(prefix: String = "test") throws {
        let base = NSTemporaryDirectory().hasSuffix("/") ? String(NSTemporaryDirectory().dropLast()) : NSTemporaryDirectory()
        var template = Array("\(base)/weir-\(prefix)-XXXXXX".utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buffer in
            guard let start = buffer.baseAddress, mkdtemp(start) != nil else { return nil }
            return String(cString: start)
        }
        guard let made else { throw TestSupportError("mkdtemp failed: errno \(errno)") }
        path = made
    }

    /// `path/name`.
    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `text` to `path/name` and returns the full path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let full = file(name)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
        return full
    }

    /// Deletes the directory and everything in it. Set `WEIR_KEEP_TEST_DIRS=1` to keep it.
    public func remove() {
        if ProcessInfo.processInfo.environment["WEIR_KEEP_TEST_DIRS"] == "1" { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Runs `body` with a fresh temporary directory that is removed afterwards, also when
/// `body` throws.
public func withTemporaryDirectory<T>(prefix: String = "test", _ body: (TemporaryDirectory) async throws -> T) async throws -> T {
    let dir = try TemporaryDirectory(prefix: prefix)
    do {
        let result = try await body(dir)
        dir.remove()
        return result
    } catch {
        dir.remove()
        throw error
    }
}
