/// A subscription topic with an optional `{device}` level: `devices/{device}/telemetry`
/// subscribes to `devices/+/telemetry` and takes the device from the second level.
/// MQTT wildcards `+` and `#` may be used as well.
public struct TopicPattern: Sendable, Hashable, CustomStringConvertible {
    /// As written in the config.
    public let pattern: String
    /// The MQTT subscription (`{device}` replaced by `+`).
    public let subscription: String
    /// Which level holds the device, if any.
    public let deviceLevel: Int?
    private let levels: [Substring]

    public init(_ pattern: String) {
        self.pattern = pattern
        levels = pattern.split(separator: "/", omittingEmptySubsequences: false)
        deviceLevel = levels.firstIndex(of: "{device}")
        subscription = levels.map { $0 == "{device}" ? "+" : String($0) }.joined(separator: "/")
    }

    public var description: String { pattern }

    /// Whether the pattern is well formed; a message for the config error otherwise.
    public var problem: String? {
        if pattern.isEmpty { return "the topic is empty" }
        if levels.filter({ $0 == "{device}" }).count > 1 { return "'{device}' may appear once" }
        for (i, level) in levels.enumerated() {
            if level == "#" && i != levels.count - 1 { return "'#' must be the last level" }
            if level != "{device}" && level.contains("{") { return "unknown placeholder '\(level)' (only {device})" }
            if level.count > 1 && (level.contains("+") || level.contains("#")) { return "wildcards must fill a whole level" }
        }
        return nil
    }

    /// The device level of `topic`, when the pattern has one and the topic matches it.
    public func device(in topic: String) -> String? {
        guard let deviceLevel else { return nil }
        var index = 0
        for level in topic.split(separator: "/", omittingEmptySubsequences: false) {
            if index == deviceLevel { return level.isEmpty ? nil : String(level) }
            index += 1
        }
        return nil
    }

    /// Whether `topic` matches the subscription (MQTT matching rules).
    public func matches(_ topic: String) -> Bool {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        var i = 0
        for level in levels {
            if level == "#" { return true }
            guard i < parts.count else { return false }
            if level != "+" && level != "{device}" && level != parts[i] { return false }
            i += 1
        }
        return i == parts.count
    }
}
