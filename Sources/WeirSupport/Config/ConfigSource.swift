import Configuration
import Foundation
import WeirCore

/// Where a program's settings come from: a YAML file, overridden key by key by
/// environment variables (`PREFIX_KEY_PATH`, e.g. `WEIR_CLOUD_MAX_OUT_OF_ORDER` for
/// `max_out_of_order`, `WEIR_EDGE_UPLINK_URL` for `uplink.url`). Built on
/// swift-configuration: the file is parsed once with Yams (``YAMLConfigFile``) into an
/// `InMemoryProvider`, read behind an `EnvironmentVariablesProvider`. Adds what Weir's
/// configs need on top: typed getters that throw a ``WeirError`` naming the key, where its
/// value came from (the file's line or the environment variable) and the problem
/// (durations like `5s`, sizes like `1GiB`, lists written as YAML sequences or
/// comma-separated), the names under a mapping (`gateways: {gw-1: ..., gw-2: ...}`), and
/// a check for unknown keys, so a typo is an error instead of a silently ignored setting.
///
/// ```swift
/// let source = try ConfigSource.load(file: "cloud/weir-cloud.yaml", environmentPrefix: "WEIR_CLOUD")
/// let lateness = try source.duration("allowed_lateness", default: .seconds(3600))
/// let windows = try source.durations("windows", default: [.seconds(60)])
/// ```
///
/// Keys are dotted paths (`uplink.url`); the items of a list of mappings are keyed by
/// position (`filters.0.match`, overridden by `WEIR_EDGE_FILTERS_0_MATCH`).
public struct ConfigSource: Sendable {
    /// The underlying reader (environment first, then the file).
    public let reader: ConfigReader
    /// The dotted keys the file defines (leaves only), sorted.
    public let fileKeys: [String]
    /// The environment prefix, e.g. `WEIR_CLOUD`.
    public let environmentPrefix: String
    /// The file the settings came from, if any (used in error messages).
    public let file: String?
    /// The line of the file each key starts on.
    let fileLines: [String: Int]
    /// The environment variables under the prefix that are set (they override the file).
    let environmentNames: Set<String>

    /// Loads `file` (YAML; `nil` for none) with environment overrides under
    /// `environmentPrefix`. A missing or malformed file is an error naming the file.
    public static func load(
        file: String?,
        environmentPrefix: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(WeirError) -> ConfigSource {
        let prefixComponents = environmentPrefix.lowercased().split(separator: "_").map(String.init)
        let env = EnvironmentVariablesProvider(environmentVariables: environment)
            .prefixKeys(with: ConfigKey(prefixComponents))
        let names = Set(environment.keys.filter { $0.hasPrefix(environmentPrefix + "_") })
        guard let file else {
            return ConfigSource(reader: ConfigReader(providers: [env]), fileKeys: [], fileLines: [:],
                                environmentPrefix: environmentPrefix, environmentNames: names, file: nil)
        }
        let parsed = try YAMLConfigFile(path: file)
        return ConfigSource(
            reader: ConfigReader(providers: [env, InMemoryProvider(name: file, values: parsed.values)]),
            fileKeys: parsed.keys,
            fileLines: parsed.lines,
            environmentPrefix: environmentPrefix,
            environmentNames: names,
            file: file
        )
    }

    init(reader: ConfigReader, fileKeys: [String], fileLines: [String: Int], environmentPrefix: String,
         environmentNames: Set<String>, file: String?) {
        self.reader = reader
        self.fileKeys = fileKeys
        self.fileLines = fileLines
        self.environmentPrefix = environmentPrefix
        self.environmentNames = environmentNames
        self.file = file
    }

    /// The environment variable that overrides `key`.
    public func environmentName(for key: String) -> String {
        let mapped = key.map { $0.isLetter || $0.isNumber ? String($0).uppercased() : "_" }.joined()
        return "\(environmentPrefix)_\(mapped)"
    }

    /// The error for a bad value of `key`, naming the key, where its value came from and `why`.
    public func problem(_ key: String, _ why: String) -> WeirError {
        WeirError(.badConfig, "config key '\(key)' (\(origin(of: key))): \(why)")
    }

    /// Where `key`'s value came from: its environment variable when that is set (it
    /// overrides the file); else the file's line that holds the key, or the key it belongs
    /// under (for a required key that is missing); else where it could be given.
    func origin(of key: String) -> String {
        let variable = environmentName(for: key)
        if environmentNames.contains(variable) { return "from \(variable)" }
        guard let file else { return variable }
        if let line = line(of: key) { return "\(file) line \(line)" }
        return "in \(file) or \(variable)"
    }

    /// The file's line of `key`, or of the nearest key it sits under.
    func line(of key: String) -> Int? {
        var path = key[...]
        while true {
            if let line = fileLines[String(path)] { return line }
            guard let dot = path.lastIndex(of: ".") else { return nil }
            path = path[..<dot]
        }
    }

    // MARK: Typed getters

    /// A string value, or `nil` when the key is not set.
    public func string(_ key: String) -> String? {
        reader.string(forKey: Self.configKey(key))
    }

    /// A string value, or `defaultValue` when the key is not set.
    public func string(_ key: String, default defaultValue: String) -> String {
        string(key) ?? defaultValue
    }

    /// A list: a YAML sequence, or a comma-separated string (as environment variables
    /// write lists). `nil` when the key is not set.
    public func list(_ key: String) -> [String]? {
        if let array = reader.stringArray(forKey: Self.configKey(key)) { return array }
        guard let text = string(key) else { return nil }
        var trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("["), trimmed.hasSuffix("]") { trimmed = String(trimmed.dropFirst().dropLast()) }
        return trimmed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// A duration written `250ms`, `5s`, `10m`, `1h`, `7d`.
    public func duration(_ key: String, default defaultValue: Duration) throws(WeirError) -> Duration {
        guard let text = string(key) else { return defaultValue }
        do { return try DurationText.parse(text) } catch { throw problem(key, error.message) }
    }

    /// A list of durations (`[10s, 60s]` or `10s,60s`).
    public func durations(_ key: String, default defaultValue: [Duration]) throws(WeirError) -> [Duration] {
        guard let items = list(key) else { return defaultValue }
        var out: [Duration] = []
        for item in items {
            do { out.append(try DurationText.parse(item)) } catch { throw problem(key, error.message) }
        }
        return out
    }

    /// A size written `512MiB`, `1GiB`, or a plain number of bytes.
    public func byteSize(_ key: String, default defaultValue: Int64) throws(WeirError) -> Int64 {
        guard let text = string(key) else { return defaultValue }
        do { return try ByteSize.parse(text) } catch { throw problem(key, error.message) }
    }

    /// An integer.
    public func int(_ key: String, default defaultValue: Int) throws(WeirError) -> Int {
        guard let text = string(key) else { return defaultValue }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw problem(key, "'\(text.prefix(40))' is not a whole number")
        }
        return value
    }

    /// A boolean (`true`/`false`, `yes`/`no`, `1`/`0`).
    public func bool(_ key: String, default defaultValue: Bool) throws(WeirError) -> Bool {
        guard let text = string(key) else { return defaultValue }
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw problem(key, "'\(text.prefix(40))' is not true or false")
        }
    }

    /// One of `choices`.
    public func choice(_ key: String, _ choices: [String], default defaultValue: String) throws(WeirError) -> String {
        guard let text = string(key) else { return defaultValue }
        guard choices.contains(text) else {
            throw problem(key, "'\(text.prefix(40))' is not one of \(choices.joined(separator: ", "))")
        }
        return text
    }

    // MARK: Structure

    /// The names directly under `prefix` in the file: `children(of: "gateways")` is
    /// `["gw-1", "gw-2"]` for `gateways: {gw-1: {...}, gw-2: {...}}`. Environment
    /// variables can override values under these names but cannot add names (an
    /// environment variable name cannot carry `-` or `.` faithfully).
    public func children(of prefix: String) -> [String] {
        let lead = prefix + "."
        var names: [String] = []
        for key in fileKeys where key.hasPrefix(lead) {
            let rest = key.dropFirst(lead.count)
            guard let name = rest.split(separator: ".", maxSplits: 1).first.map(String.init) else { continue }
            if names.last != name && !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// Throws for the first key in the file that matches none of `allowed`; a pattern's
    /// `*` stands for one key component (`gateways.*.token_sha256`).
    public func rejectUnknownKeys(allowed: [String]) throws(WeirError) {
        let patterns = allowed.map { $0.split(separator: ".").map(String.init) }
        for key in fileKeys {
            let parts = key.split(separator: ".").map(String.init)
            let known = patterns.contains { pattern in
                pattern.count == parts.count && zip(pattern, parts).allSatisfy { $0 == "*" || $0 == $1 }
            }
            if !known {
                let place = file.map { file in " (\(file)\(line(of: key).map { " line \($0)" } ?? ""))" } ?? ""
                throw WeirError(.badConfig, "config key '\(key)'\(place): unknown key (known keys: \(allowed.joined(separator: ", ")))")
            }
        }
    }

    /// A dotted key as swift-configuration components (a dotted key in a YAML file is a
    /// path of nested mappings).
    public static func configKey(_ key: String) -> ConfigKey {
        ConfigKey(key.split(separator: ".", omittingEmptySubsequences: false).map(String.init))
    }
}
