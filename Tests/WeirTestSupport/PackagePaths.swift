import Foundation

/// Where the package and its built programs are, found from this source file's path
/// (tests run from anywhere, CI clones the repository to another folder).
public enum PackagePaths {
    /// The package root (the folder holding `Package.swift`).
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }   // Tests/WeirTestSupport/PackagePaths.swift
        return url.path
    }()

    /// The debug build's products folder (`.build/debug`); `WEIR_BIN_DIR` overrides it.
    public static var binDirectory: String {
        ProcessInfo.processInfo.environment["WEIR_BIN_DIR"] ?? "\(root)/.build/debug"
    }

    /// A built program, e.g. `program("weir-cloud")`.
    public static func program(_ name: String) -> String { "\(binDirectory)/\(name)" }

    /// A program on the system (`mosquitto`, `mosquitto_pub`), searched in PATH and the sbin folders.
    public static func systemProgram(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"]
        for dir in dirs where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        throw TestSupportError("\(name) is not installed (apt-get install mosquitto mosquitto-clients)")
    }
}
