/// Which of `uplink.url`'s URLs the uplink sends to. A failure moves to the next one;
/// once every URL has failed in a row, ``failed()`` answers `nil` and the caller backs
/// off (then starts a new round at the URL it is on).
struct UplinkTarget {
    let urls: [String]
    private(set) var index = 0
    /// Failures in a row since the last success (or the last full round).
    private var failures = 0

    init(urls: [String]) {
        precondition(!urls.isEmpty, "uplink.url holds at least one URL (checked by the config)")
        self.urls = urls
    }

    var url: String { urls[index] }

    /// Moves to the next URL and returns it, or `nil` when all failed in this round.
    mutating func failed() -> String? {
        failures += 1
        guard urls.count > 1 else { return nil }
        index = (index + 1) % urls.count
        if failures >= urls.count {
            failures = 0
            return nil
        }
        return url
    }

    mutating func succeeded() {
        failures = 0
    }
}
