import WeirCore

extension VerificationReport {
    /// The report for people: one number a line, the first differences, the verdict.
    public func textLines(sizes: [Int64], maxDifferences: Int = 10) -> [String] {
        var lines: [String] = []
        let sizeList = sizes.map { DurationText.formatMilliseconds($0) }.joined(separator: ", ")
        func row(_ name: String, _ value: String) { lines.append("  " + name.padding(to: 22) + value) }
        row("readings checked", "\(readingsChecked) (cloud stores \(cloudReadings) for these devices)")
        row("windows checked", "\(totalWindowsChecked) (" + sizes.map { "\(windowsChecked[$0] ?? 0) × \(DurationText.formatMilliseconds($0))" }.joined(separator: ", ") + ")")
        row("readings lost", "\(lost)" + (lossyWindows > 0 ? " in \(lossyWindows) windows" : ""))
        row("double-counted", "\(doubleCounted)")
        row("windows mismatched", "\(mismatchedWindows)")
        row("dropped at edge", "\(droppedAtEdge) (the cloud's drop ledger)")
        row("cloud duplicates", "\(cloudDuplicates) discarded repeats, \(cloudLate) late readings applied")
        if cloudConflicts > 0 { row("conflicts", "\(cloudConflicts) (same identity, different value)") }
        if !unexpectedDevices.isEmpty {
            row("unknown devices", unexpectedDevices.prefix(5).joined(separator: ", ") + (unexpectedDevices.count > 5 ? ", ..." : ""))
        }
        if allowedLoss > 0 { row("allowed loss", "\(allowedLoss)") }
        if !differences.isEmpty {
            lines.append("  first differences:")
            for difference in differences.prefix(maxDifferences) { lines.append("    " + difference) }
        }
        if verified {
            let loss = lost > 0 ? " (\(lost) lost, explained: \(Swift.min(lost, droppedAtEdge)) by the drop ledger, \(unexplainedLoss) within --allow-loss)" : ""
            lines.append("VERIFIED: every window of \(sizeList) matches the truth\(loss)")
        } else {
            var why: [String] = []
            if unexplainedLoss > allowedLoss { why.append("\(unexplainedLoss) readings lost without explanation") }
            if doubleCounted > 0 { why.append("\(doubleCounted) double-counted") }
            if mismatchedWindows > 0 { why.append("\(mismatchedWindows) windows differ") }
            if !unexpectedDevices.isEmpty { why.append("\(unexpectedDevices.count) unknown devices") }
            if cloudConflicts > 0 { why.append("\(cloudConflicts) conflicting values") }
            lines.append("NOT VERIFIED: " + why.joined(separator: ", "))
        }
        return lines
    }

    /// The report for scripts: `key=value` lines.
    public func keyValueLines(sizes: [Int64], tally: SimulationTally) -> [String] {
        var lines = [
            "verified=\(verified ? 1 : 0)",
            "readings_checked=\(readingsChecked)",
            "cloud_readings=\(cloudReadings)",
            "windows_checked=\(totalWindowsChecked)",
            "lost=\(lost)",
            "double_counted=\(doubleCounted)",
            "windows_mismatched=\(mismatchedWindows)",
            "dropped_at_edge=\(droppedAtEdge)",
            "cloud_duplicates=\(cloudDuplicates)",
            "cloud_late=\(cloudLate)",
            "cloud_conflicts=\(cloudConflicts)",
            "unknown_devices=\(unexpectedDevices.count)",
            "sizes=" + sizes.map { DurationText.formatMilliseconds($0) }.joined(separator: ","),
        ]
        for (name, value) in tally.fields {
            lines.append("sent_" + name.replacingDots() + "=\(value)")
        }
        return lines
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }

    fileprivate func replacingDots() -> String {
        String(map { $0 == "." || $0 == "-" ? "_" : $0 })
    }
}
