import Configuration
import Foundation
import WeirCore
import Yams

/// A YAML config file, parsed once with Yams into the flat key/value form
/// swift-configuration reads (an `InMemoryProvider`), with the line each key is on so
/// that errors can point at it.
///
/// Keys are dotted paths through nested mappings: `uplink: {url: x}` is `uplink.url`, and
/// a dotted key written in the file (`uplink.url: x`) is the same path. A sequence of
/// scalars is one list value (`windows: [10s, 60s]`). A sequence that holds mappings is
/// keyed by position:
///
/// ```yaml
/// filters:                  # filters.0.match     = */temp
///   - match: "*/temp"       # filters.0.range.min = 0
///     range: {min: 0}       # (WEIR_EDGE_FILTERS_0_MATCH overrides the first)
/// ```
struct YAMLConfigFile {
    /// The file's path, as given.
    let path: String
    /// Every value, keyed as swift-configuration looks it up.
    private(set) var values: [AbsoluteConfigKey: ConfigValue] = [:]
    /// The dotted keys that hold a value (leaves only), sorted.
    private(set) var keys: [String] = []
    /// The line (from 1) each dotted key starts on: leaves, mappings and list items.
    private(set) var lines: [String: Int] = [:]

    /// Reads and parses `path`. A missing, unreadable or malformed file is an error naming it.
    init(path: String) throws(WeirError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw WeirError(.badConfig, "config file \(path) does not exist")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw WeirError(.badConfig, "config file \(path) is not readable UTF-8 text")
        }
        try self.init(text: text, path: path)
    }

    /// Parses `text` as the contents of `path`.
    init(text: String, path: String) throws(WeirError) {
        self.path = path
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw WeirError(.badConfig, "config file \(path) is not valid YAML: \(error)")
        }
        guard case .mapping(let mapping)? = root else {
            throw WeirError(.badConfig, "config file \(path) holds no settings: its top level must be a mapping of keys (`key: value` lines)")
        }
        try add(mapping, under: [])
        keys.sort()
    }

    private mutating func add(_ mapping: Node.Mapping, under prefix: [String]) throws(WeirError) {
        for (keyNode, value) in mapping {
            guard case .scalar(let name) = keyNode else {
                let line = keyNode.mark.map { " line \($0.line)" } ?? ""
                throw WeirError(.badConfig, "config file \(path)\(line): a key under '\(prefix.joined(separator: "."))' is not plain text")
            }
            let components = name.string.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            try add(value, at: prefix + components, line: keyNode.mark?.line)
        }
    }

    private mutating func add(_ node: Node, at key: [String], line: Int?) throws(WeirError) {
        let dotted = key.joined(separator: ".")
        if let line, lines[dotted] == nil { lines[dotted] = line }
        switch node {
        case .scalar(let scalar):
            set(key, dotted, .string(scalar.string))
        case .mapping(let mapping):
            try add(mapping, under: key)
        case .sequence(let items):
            let scalars = items.compactMap(\.scalar)
            if scalars.count == items.count {
                set(key, dotted, .stringArray(scalars.map(\.string)))
            } else {
                for (index, item) in items.enumerated() {
                    try add(item, at: key + [String(index)], line: item.mark?.line)
                }
            }
        case .alias:
            // Yams resolves aliases while composing; a bare alias node never reaches here.
            throw WeirError(.badConfig, "config file \(path)\(line.map { " line \($0)" } ?? ""): '\(dotted)' is an unresolved alias")
        }
    }

    private mutating func set(_ key: [String], _ dotted: String, _ content: ConfigContent) {
        if values.updateValue(ConfigValue(content, isSecret: false), forKey: AbsoluteConfigKey(key)) == nil {
            keys.append(dotted)
        }
    }
}
