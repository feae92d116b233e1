import Foundation

/// A small tmpfs mounted for one test, so a disk can really fill up: `fill()` takes every
/// free byte, `free()` gives it back, `unmount()` removes it. Needs root (mount); CI runs
/// as root.
public final class SmallFilesystem: Sendable {
    public let path: String
    private var fillerPath: String { "\(path)/filler" }

    /// Whether this process may mount (root).
    public static var available: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount") }

    public init(at path: String, sizeKiB: Int) async throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try await runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeKiB)k", "tmpfs", path], logDirectory: NSTemporaryDirectory())
    }

    /// Writes a file until the filesystem is full; returns the bytes it took.
    @discardableResult
    public func fill() -> Int {
        guard let handle = FileHandle(forWritingAtPath: fillerPath) ?? {
            FileManager.default.createFile(atPath: fillerPath, contents: nil)
            return FileHandle(forWritingAtPath: fillerPath)
        }() else { return 0 }
        defer { try? handle.close() }
        var written = 0
        let block = Data(count: 4096)
        while (try? handle.write(contentsOf: block)) != nil { written += block.count }
        try? handle.synchronize()
        return written
    }

    /// Removes what `fill()` wrote.
    public func free() {
        try? FileManager.default.removeItem(atPath: fillerPath)
    }

    public func unmount() async {
        try? await runProgram("/bin/umount", ["-l", path], logDirectory: NSTemporaryDirectory())
    }
}
