/// What a simulation has sent so far, by kind: the numbers `run` prints and stores in the
/// truth file, and the demo's summary shows.
public struct SimulationTally: Sendable, Hashable, Codable {
    /// Every publish, of any kind.
    public var messages: Int = 0
    /// Distinct valid readings sent (each once, however often it was repeated).
    public var readings: Int = 0
    /// Messages that repeated an earlier one.
    public var duplicateMessages: Int = 0
    /// Readings inside those repeats.
    public var duplicateReadings: Int = 0
    /// Messages held back and sent after newer ones.
    public var reorderedMessages: Int = 0
    /// Offline episodes started.
    public var offlineEpisodes: Int = 0
    /// Readings that were held through an offline episode and burst out later.
    public var backlogReadings: Int = 0
    /// Devices whose clock is skewed.
    public var skewedDevices: Int = 0
    /// Malformed payloads by kind name.
    public var malformed: [String: Int] = [:]

    public init() {}

    /// All malformed payloads.
    public var malformedTotal: Int { malformed.values.reduce(0, +) }

    /// The counters as `(name, value)` pairs, in a fixed order (malformed kinds last).
    public var fields: [(String, Int)] {
        var result: [(String, Int)] = [
            ("messages", messages),
            ("readings", readings),
            ("duplicate_messages", duplicateMessages),
            ("duplicate_readings", duplicateReadings),
            ("reordered_messages", reorderedMessages),
            ("offline_episodes", offlineEpisodes),
            ("backlog_readings", backlogReadings),
            ("skewed_devices", skewedDevices),
            ("malformed", malformedTotal),
        ]
        for kind in MalformedKind.allCases {
            result.append(("malformed." + kind.name, malformed[kind.name] ?? 0))
        }
        return result
    }

    /// Rebuilds a tally from `fields` pairs (unknown names are ignored).
    public init(fields: [String: Int]) {
        messages = fields["messages"] ?? 0
        readings = fields["readings"] ?? 0
        duplicateMessages = fields["duplicate_messages"] ?? 0
        duplicateReadings = fields["duplicate_readings"] ?? 0
        reorderedMessages = fields["reordered_messages"] ?? 0
        offlineEpisodes = fields["offline_episodes"] ?? 0
        backlogReadings = fields["backlog_readings"] ?? 0
        skewedDevices = fields["skewed_devices"] ?? 0
        for kind in MalformedKind.allCases {
            if let n = fields["malformed." + kind.name], n > 0 { malformed[kind.name] = n }
        }
    }
}
