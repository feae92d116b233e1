import Foundation

/// Debian's `chromium`, run headless for the dashboard's browser tests: the DOM after the
/// page's scripts ran (`--dump-dom`), or a screenshot.
///
/// ```swift
/// guard let chromium = HeadlessChromium.find() else { return }   // tests skip with HeadlessChromium.missing
/// let dom = try await chromium.dumpDOM("http://127.0.0.1:8080/", in: dir)
/// ```
public struct HeadlessChromium: Sendable {
    public let executable: String

    /// Why the browser tests are skipped when no browser is found (names the package).
    public static let missing = "chromium is not installed: the dashboard's browser tests need Debian's chromium package (apt-get install chromium; scripts/setup installs it)"

    /// The installed browser, or `nil`.
    public static func find() -> HeadlessChromium? {
        for name in ["chromium", "chromium-browser"] {
            if let path = try? PackagePaths.systemProgram(name) { return HeadlessChromium(executable: path) }
        }
        return nil
    }

    /// Whether a browser is installed (for `.enabled(if:)`).
    public static var isAvailable: Bool { find() != nil }

    static let baseArguments = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars"]

    /// The DOM after the page loaded and its scripts ran. `virtualTimeBudget` lets timers
    /// and finished network requests run that long (virtual time) before the dump; it
    /// waits, in real time, for requests still open.
    public func dumpDOM(_ url: String, in directory: String, virtualTimeBudget: Duration? = nil,
                        timeout: Duration = .seconds(60)) async throws -> String {
        var arguments = Self.baseArguments
        if let budget = virtualTimeBudget { arguments.append("--virtual-time-budget=\(budget.components.seconds * 1000 + budget.components.attoseconds / 1_000_000_000_000_000)") }
        arguments += ["--dump-dom", url]
        let process = try await run(arguments, in: directory, timeout: timeout)
        return process.standardOutput
    }

    /// Saves a PNG of the page at `size` to `path`.
    public func screenshot(_ url: String, to path: String, width: Int = 1400, height: Int = 900, in directory: String,
                           timeout: Duration = .seconds(60)) async throws {
        try? FileManager.default.removeItem(atPath: path)
        let process = try await run(Self.baseArguments + ["--screenshot=\(path)", "--window-size=\(width),\(height)", url],
                                    in: directory, timeout: timeout)
        guard FileManager.default.fileExists(atPath: path) else {
            throw TestSupportError("chromium wrote no screenshot to \(path)\n\(process.outputTail())")
        }
    }

    private func run(_ arguments: [String], in directory: String, timeout: Duration) async throws -> ManagedProcess {
        // A profile of its own per run: runs side by side must not share a profile lock.
        let profile = "\(directory)/chromium-profile-\(UInt32.random(in: 0...UInt32.max))"
        let process = try ManagedProcess.start(name: "chromium", executable: executable,
                                               arguments: ["--user-data-dir=\(profile)"] + arguments,
                                               environment: ["HOME": directory], logDirectory: directory)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                _ = await process.killNow()
                throw TestSupportError("chromium did not finish within \(timeout)\n\(process.outputTail())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return process
    }
}
