import Synchronization
import WeirCore

/// The devices a gateway may write or a reader may see: a list of ``DeviceGlob``s, or
/// every device.
///
/// ```swift
/// let scope = try DeviceScope(patterns: ["plant-a-*"])
/// scope.allows("plant-a-3")   // true
/// DeviceScope.all.allows("x") // true
/// ```
public struct DeviceScope: Sendable, Equatable {
    /// `nil`: every device.
    public let globs: [DeviceGlob]?

    /// Every device.
    public static let all = DeviceScope(globs: nil)

    init(globs: [DeviceGlob]?) {
        self.globs = globs
    }

    /// The scope of `patterns` (`nil`: every device); throws for a bad pattern.
    public init(patterns: [String]?) throws(WeirError) {
        guard let patterns else {
            self.init(globs: nil)
            return
        }
        var globs: [DeviceGlob] = []
        for pattern in patterns { globs.append(try DeviceGlob(pattern)) }
        self.init(globs: globs.contains { $0.pattern == "*" } ? nil : globs)
    }

    /// Whether every device is in scope.
    public var isAll: Bool { globs == nil }

    /// Whether `device` is in scope.
    public func allows(_ device: String) -> Bool {
        guard let globs else { return true }
        return globs.contains { $0.matches(device) }
    }

    /// The patterns, for messages.
    public var text: String { globs.map { "[" + $0.map(\.pattern).joined(separator: ", ") + "]" } ?? "[*]" }
}
