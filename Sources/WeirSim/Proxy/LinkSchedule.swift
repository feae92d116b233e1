import WeirCore

/// When the proxy's link is up and when it is down: `"up 20s, down 10s, ..."`.
///
/// - Each step is a state (`up` or `down`) and how long it lasts.
/// - A trailing `...` repeats the whole schedule forever.
/// - Without `...`, the link stays in the last state once the schedule has run out; the
///   last step may leave out its duration (`"up 20s, down 10s, up"`).
///
/// ```swift
/// let schedule = try LinkSchedule.parse("up 20s, down 10s, ...")
/// schedule.state(at: .seconds(25))   // .down
/// ```
public struct LinkSchedule: Sendable, Hashable, CustomStringConvertible {
    /// One step of the schedule.
    public struct Step: Sendable, Hashable {
        public var up: Bool
        /// `nil` only for an open-ended last step.
        public var duration: Duration?

        public init(up: Bool, duration: Duration?) {
            self.up = up
            self.duration = duration
        }
    }

    public var steps: [Step]
    public var repeats: Bool

    public init(steps: [Step], repeats: Bool) {
        self.steps = steps
        self.repeats = repeats
    }

    /// Always up.
    public static let alwaysUp = LinkSchedule(steps: [Step(up: true, duration: nil)], repeats: false)

    /// Parses the schedule text; the error names the step that is wrong.
    public static func parse(_ text: String) throws(WeirError) -> LinkSchedule {
        func bad(_ why: String) -> WeirError {
            WeirError(.badArgument, "--schedule '\(text.prefix(120))': \(why) (write e.g. \"up 20s, down 10s, ...\")")
        }
        var parts = text.split(separator: ",").map { $0.split(whereSeparator: \.isWhitespace).map(String.init) }
        parts.removeAll { $0.isEmpty }
        guard !parts.isEmpty else { throw bad("it is empty") }
        var repeats = false
        if parts.last == ["..."] {
            repeats = true
            parts.removeLast()
            guard !parts.isEmpty else { throw bad("'...' needs steps to repeat") }
        }
        var steps: [Step] = []
        for (index, words) in parts.enumerated() {
            let isLast = index == parts.count - 1
            guard words.count <= 2 else { throw bad("step \(index + 1) '\(words.joined(separator: " "))' has extra words") }
            let up: Bool
            switch words[0].lowercased() {
            case "up", "on": up = true
            case "down", "off": up = false
            default: throw bad("step \(index + 1) starts with '\(words[0])' (up or down expected)")
            }
            var duration: Duration?
            if words.count == 2 {
                let parsed: Duration
                do { parsed = try DurationText.parse(words[1]) } catch { throw bad("step \(index + 1): \(error.message)") }
                guard parsed > .zero else { throw bad("step \(index + 1) lasts 0s") }
                duration = parsed
            } else if !isLast || repeats {
                throw bad("step \(index + 1) '\(words[0])' needs a duration (only the last step of a schedule without '...' may leave it out)")
            }
            steps.append(Step(up: up, duration: duration))
        }
        return LinkSchedule(steps: steps, repeats: repeats)
    }

    /// Whether the link is up `elapsed` after the schedule started.
    public func state(at elapsed: Duration) -> Bool {
        var t = elapsed.milliseconds
        if repeats {
            let cycle = steps.reduce(Int64(0)) { $0 + ($1.duration?.milliseconds ?? 0) }
            if cycle > 0 { t %= cycle }
        }
        for step in steps {
            guard let duration = step.duration?.milliseconds else { return step.up }
            if t < duration { return step.up }
            t -= duration
        }
        return steps.last?.up ?? true
    }

    /// The steps in order, cycling when the schedule repeats; ends when it does not.
    public var timeline: some Sequence<Step> {
        var index = 0
        let steps = self.steps
        let repeats = self.repeats
        return AnySequence {
            AnyIterator { () -> Step? in
                if index >= steps.count {
                    guard repeats else { return nil }
                    index = 0
                }
                defer { index += 1 }
                return steps[index]
            }
        }
    }

    public var description: String {
        var parts = steps.map { step in
            (step.up ? "up" : "down") + (step.duration.map { " " + DurationText.format($0) } ?? "")
        }
        if repeats { parts.append("...") }
        return parts.joined(separator: ", ")
    }
}
