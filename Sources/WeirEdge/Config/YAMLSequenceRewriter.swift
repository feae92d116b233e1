/// swift-configuration's YAML reader takes mappings and sequences of scalars, but not
/// sequences of mappings, which the edge's config uses (`mqtt.subscriptions`,
/// `filters`). This rewrites each such sequence into a mapping keyed by position before
/// the reader sees it:
///
/// ```yaml
/// filters:                    filters:
///   - match: "*/temp"    →      "0":
///     range: {min: 0}             match: "*/temp"
///                                 range: {min: 0}
/// ```
///
/// so `filters.0.match` is an ordinary key, overridable as `WEIR_EDGE_FILTERS_0_MATCH`.
/// Items must be indented under their key (the common style); scalar sequences and
/// flow sequences are left alone.
enum YAMLSequenceRewriter {
    static func rewrite(_ text: String) -> String {
        var output: [String] = []
        // Open sequences of mappings: the indent of their "- ", the next index, and how
        // far their lines move right (2 when the items sit at their key's own indent,
        // the compact style `key:\n- a: 1`, so that the "N": keys nest under the key).
        var open: [(indent: Int, next: Int, shift: Int)] = []
        // The indent of the last `key:` line with no value on it (a parent).
        var parentIndent = -1
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            let indent = line.prefix { $0 == " " }.count
            let content = line.dropFirst(indent)
            if content.isEmpty || content.hasPrefix("#") {
                output.append(String(line))
                continue
            }
            if content == "-" || content.hasPrefix("- ") {
                let item = content.dropFirst(1).drop { $0 == " " }
                let itemOffset = content.count - item.count
                while let last = open.last, last.indent > indent { open.removeLast() }
                if isMappingEntry(item) {
                    let index: Int
                    if let last = open.last, last.indent == indent {
                        index = last.next
                        open[open.count - 1].next += 1
                    } else {
                        index = 0
                        open.append((indent, 1, indent == parentIndent ? 2 : 0))
                    }
                    let shift = open[open.count - 1].shift + outerShift(open.dropLast())
                    let pad = String(repeating: " ", count: indent + shift)
                    output.append("\(pad)\"\(index)\":")
                    output.append(String(repeating: " ", count: indent + shift + itemOffset) + item)
                    parentIndent = item.hasSuffix(":") ? indent + itemOffset : -1
                    continue
                }
                output.append(String(repeating: " ", count: outerShift(open[...])) + line)
                continue
            }
            // A line at or left of an open sequence's dash ends it, unless it is the
            // continuation of a compact-style item (indented past the dash).
            while let last = open.last, last.indent >= indent { open.removeLast() }
            output.append(String(repeating: " ", count: outerShift(open[...])) + line)
            parentIndent = content.hasSuffix(":") ? indent : -1
        }
        return output.joined(separator: "\n")
    }

    /// How far the enclosing open sequences move a line right.
    private static func outerShift(_ open: ArraySlice<(indent: Int, next: Int, shift: Int)>) -> Int {
        open.reduce(0) { $0 + $1.shift }
    }

    /// `key: value` or `key:` (plain or quoted key), not a scalar such as `a:b` or `"x"`.
    private static func isMappingEntry(_ item: Substring) -> Bool {
        var rest = item[...]
        if let quote = rest.first, quote == "\"" || quote == "'" {
            rest = rest.dropFirst()
            guard let end = rest.firstIndex(of: quote) else { return false }
            rest = rest[rest.index(after: end)...]
            rest = rest.drop { $0 == " " }
            guard rest.first == ":" else { return false }
            rest = rest.dropFirst()
            return rest.isEmpty || rest.first == " "
        }
        if rest.first == "{" || rest.first == "[" { return false }
        guard let colon = rest.firstIndex(of: ":") else { return false }
        let after = rest[rest.index(after: colon)...]
        return after.isEmpty || after.first == " "
    }
}
