import GRDB
import WeirCore

/// What the gaps API and the dashboard know of one series' continuity.
public struct SeriesContinuity: Sendable {
    /// The learned cadence, ms; `nil` when too young or irregular.
    public var cadenceMs: Int64?
    /// Gaps overlapping the asked range, ascending.
    public var gaps: [Gap]
    /// Drop-ledger rows of the series overlapping the asked range.
    public var drops: [EdgeDrop]
}

/// A device's recent activity, for `completeness_1h` and the fleet page's sparkline.
public struct DeviceRecent: Sendable {
    /// Readings of the hour ending at the device's newest reading over the readings its
    /// series' cadences expect there (from a series' first reading on, if it is younger);
    /// `nil` when no series has a cadence. A series that stopped while the device goes on
    /// counts as missing.
    public var completeness1h: Double?
    /// Readings per bucket over that hour (``DeviceRecent/buckets`` equal buckets, oldest first).
    public var activity: [Int64]
    public static let buckets = 30
}

/// A store that can tell gaps, cadences and recent activity.
public protocol ContinuitySource: Sendable {
    /// Cadence, gaps and drops of one series for `[from, to)`; `nil` for an unknown device.
    func continuity(device: String, metric: String, from: Int64, to: Int64, gapFactor: Double) async throws -> SeriesContinuity?
    /// The learned cadence of one series.
    func cadence(device: String, metric: String) async throws -> Int64?
    /// Every device's recent activity, by name.
    func recentActivity() async throws -> [String: DeviceRecent]
}

extension SQLiteReadingStore: ContinuitySource {
    /// Gaps are found at the smallest window size.
    var gapSizeMs: Int64 { settings.windowSizesMs.min() ?? 60_000 }

    public func cadence(device: String, metric: String) async throws -> Int64? {
        let size = gapSizeMs
        return try await read(locked: { db, state in
            try Self.locate(db, &state, device: device, metric: metric, size: size)
        }, unlocked: { db, located in
            guard let located, let seriesID = located.seriesID else { return nil }
            return Cadence.learn(from: try Self.newestWindows(db, seriesID: seriesID, sizeMs: size, limit: Cadence.windowsLooked,
                                                                overlay: located.overlay))
        })
    }

    public func continuity(device: String, metric: String, from: Int64, to: Int64, gapFactor: Double) async throws -> SeriesContinuity? {
        let size = gapSizeMs
        return try await read(locked: { db, state in
            try Self.locate(db, &state, device: device, metric: metric, size: size)
        }, unlocked: { db, located -> SeriesContinuity? in
            guard let located else { return nil }
            let drops = try EdgeDrop.fetch(db, deviceID: located.deviceID, metric: metric).filter { $0.to >= from && $0.from < to }
            guard let seriesID = located.seriesID else { return SeriesContinuity(cadenceMs: nil, gaps: [], drops: drops) }
            let overlay = located.overlay
            guard let cadence = Cadence.learn(from: try Self.newestWindows(db, seriesID: seriesID, sizeMs: size,
                                                                           limit: Cadence.windowsLooked, overlay: overlay)) else {
                return SeriesContinuity(cadenceMs: nil, gaps: [], drops: drops)
            }
            // One non-empty window on each side of the range, for gaps that cross its ends.
            let before = max(try Int64.fetchOne(db, sql: "SELECT MAX(start) FROM windows WHERE series_id = ? AND size_ms = ? AND start < ?",
                                                arguments: [seriesID, size, from]) ?? .min,
                             overlay.last { $0.start < from }?.start ?? .min)
            let after = min(try Int64.fetchOne(db, sql: "SELECT MIN(start) FROM windows WHERE series_id = ? AND size_ms = ? AND start >= ?",
                                               arguments: [seriesID, size, to]) ?? .max,
                            overlay.first { $0.start >= to }?.start ?? .max)
            let scanFrom = before == .min ? from : before
            let scanTo = after == .max ? to : after + 1
            let inRange = overlay.filter { $0.start >= scanFrom && $0.start < scanTo }
            let windows = try Self.scanWindows(db, seriesID: seriesID, sizeMs: size, from: scanFrom, to: scanTo, overlay: inRange)
            let threshold = Int64((Double(cadence) * gapFactor).rounded())
            var rawScans = 0
            let intervals = try GapFinder.gaps(windows: windows, cadenceMs: cadence, threshold: threshold) { window in
                // Each scan reads every series' raw readings of the window (the raw key is time first).
                rawScans += 1
                guard rawScans <= 200 else { return nil }
                return try Int64.fetchAll(db, sql: """
                    SELECT ts FROM raw WHERE ts >= ? AND ts <= ? AND series_id = ? AND applied = 1 ORDER BY ts
                    """, arguments: [window.aggregate.firstTs, window.aggregate.lastTs, seriesID])
            }
            let gaps = GapFinder.classify(intervals.filter { $0.to > from && $0.from < to }, drops: drops)
            return SeriesContinuity(cadenceMs: cadence, gaps: gaps, drops: drops)
        })
    }

    public func recentActivity() async throws -> [String: DeviceRecent] {
        let size = gapSizeMs
        let hour: Int64 = 3_600_000
        return try await read(locked: { db, state -> (devices: [(id: Int64, name: String, maxTs: Int64?)], overlay: [Int64: [WindowRecord]]) in
            var devices: [(id: Int64, name: String, maxTs: Int64?)] = []
            for row in try Row.fetchAll(db, sql: "SELECT id, name, max_ts FROM devices") {
                let id: Int64 = row[0]
                var maxTs: Int64? = row[2]
                if let ts = state.writeBack.dirtyDevices[id]?.maxTs, maxTs.map({ ts > $0 }) ?? true { maxTs = ts }
                devices.append((id, row[1], maxTs))
            }
            var overlay: [Int64: [WindowRecord]] = [:]
            for (key, record) in state.writeBack.dirty where key.sizeMs == size { overlay[key.seriesID, default: []].append(record) }
            return (devices, overlay.mapValues { $0.sorted { $0.start < $1.start } })
        }, unlocked: { db, located in
            var series: [Int64: [Int64]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, device_id FROM series") {
                series[row[1], default: []].append(row[0])
            }
            let limit = max(Cadence.windowsLooked, Int(hour / size) + 2)
            var result: [String: DeviceRecent] = [:]
            for device in located.devices {
                var activity = [Int64](repeating: 0, count: DeviceRecent.buckets)
                guard let maxTs = device.maxTs else {
                    result[device.name] = DeviceRecent(completeness1h: nil, activity: activity)
                    continue
                }
                let hourFrom = maxTs - hour
                var got: Int64 = 0
                var expected = 0.0
                for seriesID in series[device.id] ?? [] {
                    let windows = try Self.newestWindows(db, seriesID: seriesID, sizeMs: size, limit: limit,
                                                         overlay: located.overlay[seriesID] ?? [])
                    var count: Int64 = 0
                    for window in windows where window.start >= hourFrom {
                        count += window.aggregate.count
                        let bucket = Int((window.start - hourFrom) * Int64(DeviceRecent.buckets) / hour)
                        activity[min(max(bucket, 0), DeviceRecent.buckets - 1)] += window.aggregate.count
                    }
                    if let cadence = Cadence.learn(from: windows.suffix(Cadence.windowsLooked)), let oldest = windows.first {
                        // A series younger than the hour is expected to fill it from its first reading on.
                        let young = windows.count < limit && oldest.start >= hourFrom
                        got += count
                        expected += young ? Double(maxTs - oldest.aggregate.firstTs) / Double(cadence) + 1 : Double(hour) / Double(cadence)
                    }
                }
                let completeness = expected > 0 ? Cadence.completeness(count: got, expected: expected) : nil
                result[device.name] = DeviceRecent(completeness1h: completeness, activity: activity)
            }
            return result
        })
    }

    /// The device id, series id and the series' overlay at `size` (under the lock).
    static func locate(_ db: Database, _ state: inout WriterState, device: String, metric: String, size: Int64)
        throws -> (deviceID: Int64, seriesID: Int64?, overlay: [WindowRecord])? {
        guard let deviceID = try Int64.fetchOne(db, sql: "SELECT id FROM devices WHERE name = ?", arguments: [device]) else {
            return nil
        }
        guard let seriesID = try Int64.fetchOne(db, sql: "SELECT id FROM series WHERE device_id = ? AND metric = ?",
                                                arguments: [deviceID, metric]) else {
            return (deviceID, nil, [])
        }
        let overlay = state.writeBack.dirtyWindows(seriesID: seriesID).filter { $0.sizeMs == size }.sorted { $0.start < $1.start }
        return (deviceID, seriesID, overlay)
    }

    /// The newest `limit` windows of a series, ascending, with the overlay applied.
    static func newestWindows(_ db: Database, seriesID: Int64, sizeMs: Int64, limit: Int, overlay: [WindowRecord]) throws -> [WindowRecord] {
        let s = try RawStatement(db, sql: """
            SELECT start, count, sum, min, max, first_ts, first_value, last_ts, last_value, revision, late
            FROM windows INDEXED BY windows_by_series WHERE series_id = ? AND size_ms = ? ORDER BY start DESC LIMIT ?
            """)
        s.bind(1, seriesID)
        s.bind(2, sizeMs)
        s.bind(3, Int64(limit))
        defer { s.reset() }
        var rows: [WindowRecord] = []
        while try s.step() {
            let aggregate = WindowAggregate(count: s.int64(1), sum: s.double(2), min: s.double(3), max: s.double(4),
                                            firstTs: s.int64(5), firstValue: s.double(6), lastTs: s.int64(7), lastValue: s.double(8))
            rows.append(WindowRecord(sizeMs: sizeMs, start: s.int64(0), aggregate: aggregate, revision: s.int64(9), late: s.int64(10)))
        }
        guard !overlay.isEmpty else { return rows.reversed() }
        var byStart: [Int64: WindowRecord] = [:]
        for row in rows { byStart[row.start] = row }
        for record in overlay { byStart[record.start] = record }
        return Array(byStart.values.sorted { $0.start < $1.start }.suffix(limit))
    }
}

extension EdgeDrop {
    /// The drop-ledger rows of one device's metric.
    static func fetch(_ db: Database, deviceID: Int64, metric: String) throws -> [EdgeDrop] {
        try Row.fetchAll(db, sql: "SELECT from_ts, to_ts, count FROM edge_drops WHERE device_id = ? AND metric = ? ORDER BY from_ts",
                         arguments: [deviceID, metric]).map { EdgeDrop(from: $0[0], to: $0[1], count: $0[2]) }
    }
}
