import Synchronization
import WeirSupport

/// Device and series keys, and which of them this process has seen committed.
///
/// A key is a 63-bit prefix of SHA-256 of the name, so every replica computes the same
/// key without a lookup; this memo saves hashing the same names in every batch.
///
/// `devices` and `series` rows are only ever inserted, never deleted or re-keyed, so "this
/// row was committed" stays true for the life of the database: a batch whose devices and
/// series are all known skips their inserts. It is the one piece of state that outlives
/// a transaction, and it can only lag the database (a row committed by another replica is
/// simply inserted again with `ON CONFLICT DO NOTHING`), never contradict it. Rows enter
/// it only after their transaction committed.
final class PostgresKeys: Sendable {
    private struct State {
        var deviceKeys: [String: Int64] = [:]
        var seriesKeys: [SeriesName: Int64] = [:]
        var committedDevices: Set<Int64> = []
        var committedSeries: Set<SeriesKey> = []
    }

    /// A series row's key: its device's key and its own.
    struct SeriesKey: Hashable {
        var device: Int64
        var series: Int64
    }

    /// Past this many names the memo starts over (a fleet's names fit many times over).
    static let capacity = 1_000_000
    private let state = Mutex(State())

    /// The keys of `devices` and `series` (computed once per name per process).
    func keys(devices: [String], series: [SeriesName]) -> (devices: [Int64], series: [Int64]) {
        state.withLock { state in
            if state.deviceKeys.count + state.seriesKeys.count > Self.capacity {
                state.deviceKeys.removeAll()
                state.seriesKeys.removeAll()
            }
            let deviceKeys = devices.map { name in
                if let key = state.deviceKeys[name] { return key }
                let key = Self.deviceID(name)
                state.deviceKeys[name] = key
                return key
            }
            let seriesKeys = series.map { name in
                if let key = state.seriesKeys[name] { return key }
                let key = Self.seriesID(name)
                state.seriesKeys[name] = key
                return key
            }
            return (deviceKeys, seriesKeys)
        }
    }

    /// Which of `devices` and `series` are not known to be committed.
    func unknown(devices: [Int64], series: [SeriesKey]) -> (devices: [Int], series: [Int]) {
        state.withLock { state in
            (devices.indices.filter { !state.committedDevices.contains(devices[$0]) },
             series.indices.filter { !state.committedSeries.contains(series[$0]) })
        }
    }

    /// Records rows of a transaction that committed.
    func committed(devices: [Int64], series: [SeriesKey]) {
        guard !devices.isEmpty || !series.isEmpty else { return }
        state.withLock { state in
            if state.committedDevices.count + state.committedSeries.count > Self.capacity {
                state.committedDevices.removeAll()
                state.committedSeries.removeAll()
            }
            state.committedDevices.formUnion(devices)
            state.committedSeries.formUnion(series)
        }
    }

    /// Forgets which rows were seen committed (a device row missing after all: removed by
    /// hand), so the next batch inserts what it needs again.
    func forgetCommitted() {
        state.withLock { state in
            state.committedDevices.removeAll()
            state.committedSeries.removeAll()
        }
    }

    /// A device's key: the first 63 bits of SHA-256("device\0" + name).
    static func deviceID(_ name: String) -> Int64 {
        key("device\u{0}\(name)")
    }

    /// A series' key: the first 63 bits of SHA-256("series\0" + device + "\0" + metric).
    static func seriesID(_ name: SeriesName) -> Int64 {
        key("series\u{0}\(name.device)\u{0}\(name.metric)")
    }

    private static func key(_ text: String) -> Int64 {
        let digest = SHA256.hash(Array(text.utf8))
        var value: UInt64 = 0
        for byte in digest.prefix(8) { value = value << 8 | UInt64(byte) }
        return Int64(bitPattern: value & 0x7FFF_FFFF_FFFF_FFFF)
    }
}
