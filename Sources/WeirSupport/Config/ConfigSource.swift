import Configuration
import Foundation
import SystemPackage
import WeirCore

/// Where a program's settings come from: a YAML file, overridden key by key by
/// environment variables (`PREFIX_KEY_PATH`, e.g. `WEIR_CLOUD_MAX_OUT_OF_ORDER` for
/// `max_out_of_order`, `WEIR_EDGE_UPLINK_URL` for `uplink.url`). Built on
/// swift-configuration; adds what Weir's configs need on top of it: typed getters that
/// throw a ``WeirError`` naming the key and the problem (durations like `5s`, sizes like
/// `1GiB`, lists written as YAML sequences or comma-separated), the names under a mapping
/// (`gateways: {gw-1: ..., gw-2: ...}`), and a check for unknown keys, so a typo is an
/// error instead of a silently ignored setting.
///
/// ```swift
/// let source = try await ConfigSource.load(file: "cloud/weir-cloud.yaml", environmentPrefix: "WEIR_CLOUD")
/// let lateness = try source.duration("allowed_lateness", default: .seconds(3600))
/// let windows = try source.durations("windows", default: [.seconds(60)])
/// ```
///
/// Keys are dotted paths (`uplink.url`). YAML sequences of mappings are not supported by
/// swift-configuration's YAML reader; write such settings as mappings keyed by name.
public struct ConfigSource: Sendable {
    /// The underlying reader (environment first, then the file).
    public let reader: ConfigReader
    /// The dotted keys the file defines (leaves only), sorted.
    public let fileKeys: [String]
    /// The environment prefix, e.g. `WEIR_CLOUD`.
    public let environmentPrefix: String
    /// The file the settings came from, if any (used in error messages).
    public let file: String?

    /// Loads `file` (YAML; `nil` for none) with environment overrides under
    /// `environmentPrefix`. A missing or malformed file is an error naming the file.
    public static func load(
        file: String?,
        environmentPrefix: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws(WeirError) -> ConfigSource {
        let prefixComponents = environmentPrefix.lowercased().split(separator: "_").map(String.init)
        let env = EnvironmentVariablesProvider(environmentVariables: environment)
            .prefixKeys(with: ConfigKey(prefixComponents))
        guard let file else {
            return ConfigSource(reader: ConfigReader(providers: [env]), fileKeys: [],
                                environmentPrefix: environmentPrefix, file: nil)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw WeirError(.badConfig, "config file \(file) does not exist")
        }
        let provider: FileProvider<YAMLSnapshot>
        do {
            provider = try await FileProvider<YAMLSnapshot>(filePath: FilePath(file))
        } catch {
            throw WeirError(.badConfig, "config file \(file) is not valid YAML for Weir: \(error)")
        }
        return ConfigSource(
            reader: ConfigReader(providers: [env, provider]),
            fileKeys: Self.leafKeys(fromDebugDescription: provider.debugDescription),
            environmentPrefix: environmentPrefix,
            file: file
        )
    }

    /// A source over fixed values (for tests): `["windows": "10s,60s"]`.
    public static func inMemory(_ values: [String: String], environmentPrefix: String = "WEIR_TEST") -> ConfigSource {
        var dict: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in values {
            dict[AbsoluteConfigKey(key.split(separator: ".").map(String.init))] = ConfigValue(.string(value), isSecret: false)
        }
        return ConfigSource(reader: ConfigReader(provider: InMemoryProvider(values: dict)),
                            fileKeys: values.keys.sorted(), environmentPrefix: environmentPrefix, file: nil)
    }

    init(reader: ConfigReader, fileKeys: [String], environmentPrefix: String, file: String?) {
        self.reader = reader
        self.fileKeys = fileKeys
        self.environmentPrefix = environmentPrefix
        self.file = file
    }

    /// The environment variable that overrides `key`.
    public func environmentName(for key: String) -> String {
        let mapped = key.map { $0.isLetter || $0.isNumber ? String($0).uppercased() : "_" }.joined()
        return "\(environmentPrefix)_\(mapped)"
    }

    /// The error for a bad value of `key`, naming the key, its environment variable and the file.
    public func problem(_ key: String, _ why: String) -> WeirError {
        let whereText = file.map { " (in \($0) or \(environmentName(for: key)))" } ?? " (\(environmentName(for: key)))"
        return WeirError(.badConfig, "config key '\(key)'\(whereText): \(why)")
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
                throw WeirError(.badConfig, "config key '\(key)'\(file.map { " in \($0)" } ?? ""): unknown key (known keys: \(allowed.joined(separator: ", ")))")
            }
        }
    }

    /// A dotted key as swift-configuration components (a dotted key in a YAML file is a
    /// path of nested mappings).
    public static func configKey(_ key: String) -> ConfigKey {
        ConfigKey(key.split(separator: ".", omittingEmptySubsequences: false).map(String.init))
    }

    /// swift-configuration has no API that lists a file's keys; its YAML snapshot's debug
    /// description does (`name[N values: a.b=1, c=[x, y]]`, sorted by key). Only names are
    /// taken from it, never values; a value containing `, key=` could add a phantom key, which
    /// at worst makes `rejectUnknownKeys` complain about a key that is not there.
    static func leafKeys(fromDebugDescription text: String) -> [String] {
        guard let start = text.range(of: " values: ") else { return [] }
        var body = text[start.upperBound...]
        if body.hasSuffix("]") { body = body.dropLast() }
        var keys: [String] = []
        let keyCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_.-/:*"))
        for piece in body.components(separatedBy: ", ") {
            guard let eq = piece.firstIndex(of: "=") else { continue }
            let key = piece[..<eq]
            guard !key.isEmpty, key.unicodeScalars.allSatisfy({ keyCharacters.contains($0) }) else { continue }
            keys.append(String(key))
        }
        return keys.sorted()
    }
}
