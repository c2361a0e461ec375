import Foundation
import TernCore

/// One problem with the configuration, naming the key and where its value came from.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var source: String
    public var message: String

    public var description: String { "\(key) (\(source)): \(message)" }
}

/// Every problem found, reported together.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]

    public var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Where each raw value came from, for messages and `tern config check`.
public struct RawConfig: Sendable {
    public var values: [String: (value: String, source: String)] = [:]
    public var problems: [ConfigProblem] = []
}

/// Reads and layers configuration sources.
public enum ConfigLoader {
    /// Layers defaults < `file` < environment (`TERN_*`, plus `AUTH_DEV_MODE`) < `overrides`
    /// (`key=value` from flags) and validates the result.
    public static func load(
        file: String?, environment: [String: String], overrides: [(String, String)]
    ) -> Result<TernConfiguration, ConfigErrors> {
        let raw = layer(file: file, environment: environment, overrides: overrides)
        return TernConfiguration.build(raw)
    }

    /// The layered raw values, without typing them.
    public static func layer(file: String?, environment: [String: String], overrides: [(String, String)]) -> RawConfig {
        var raw = RawConfig()
        for key in ConfigKeys.all { raw.values[key.name] = (key.defaultValue, "default") }
        if let file {
            if let data = FileManager.default.contents(atPath: file) {
                let text = String(decoding: data, as: UTF8.self)
                for entry in parseFile(text, path: file, problems: &raw.problems) {
                    raw.values[entry.key] = (entry.value, "\(file):\(entry.line)")
                }
            } else {
                raw.problems.append(ConfigProblem(key: "config", source: file, message: "cannot read the configuration file"))
            }
        }
        let known = Dictionary(uniqueKeysWithValues: ConfigKeys.all.map { ($0.environmentName, $0.name) })
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("TERN_") {
            if name == "TERN_CONFIG" { continue }
            if let key = known[name] {
                raw.values[key] = (value, "environment \(name)")
            } else {
                raw.problems.append(ConfigProblem(key: name, source: "environment", message: "unknown variable\(suggestion(forEnvironment: name))"))
            }
        }
        if let dev = environment["AUTH_DEV_MODE"] {
            raw.values["auth.dev_mode"] = (dev, "environment AUTH_DEV_MODE")
        }
        for (key, value) in overrides {
            if ConfigKeys.named(key) == nil {
                raw.problems.append(ConfigProblem(key: key, source: "command line", message: "unknown key\(suggestion(for: key))"))
            } else {
                raw.values[key] = (value, "command line")
            }
        }
        return raw
    }

    /// Parses the TOML subset Tern's files use: `[section]` headers, `key = value` lines
    /// (bare words, numbers, booleans or "quoted strings"), dotted keys, `#` comments.
    static func parseFile(_ text: String, path: String, problems: inout [ConfigProblem]) -> [(key: String, value: String, line: Int)] {
        var out: [(String, String, Int)] = []
        var section = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var line = stripComment(String(rawLine)).trimmingWhitespace()
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    problems.append(ConfigProblem(key: line, source: "\(path):\(lineNumber)", message: "malformed section header"))
                    continue
                }
                line.removeFirst()
                line.removeLast()
                section = line.trimmingWhitespace()
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                problems.append(ConfigProblem(key: line, source: "\(path):\(lineNumber)", message: "expected `key = value`"))
                continue
            }
            let name = String(line[..<eq]).trimmingWhitespace()
            var value = String(line[line.index(after: eq)...]).trimmingWhitespace()
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            let key = section.isEmpty ? name : "\(section).\(name)"
            if ConfigKeys.named(key) == nil {
                problems.append(ConfigProblem(key: key, source: "\(path):\(lineNumber)", message: "unknown key\(suggestion(for: key))"))
                continue
            }
            out.append((key, value, lineNumber))
        }
        return out
    }

    private static func stripComment(_ line: String) -> String {
        var inQuotes = false
        var out = ""
        for c in line {
            if c == "\"" { inQuotes.toggle() }
            if c == "#" && !inQuotes { break }
            out.append(c)
        }
        return out
    }

    private static func suggestion(for key: String) -> String {
        let best = ConfigKeys.all.map { ($0.name, editDistance($0.name, key)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= 3 else { return "" }
        return "; did you mean \(best.0)?"
    }

    private static func suggestion(forEnvironment name: String) -> String {
        let best = ConfigKeys.all.map { ($0.environmentName, editDistance($0.environmentName, name)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= 3 else { return "" }
        return "; did you mean \(best.0)?"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Typed parsers for configuration values.
public enum ConfigValue {
    public static func duration(_ text: String) -> Duration? {
        let t = text.trimmingWhitespace()
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, millis) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count)
            // "ms" must win over "s"/"m": check that what is left is a plain number.
            guard let n = Int64(number), n >= 0 else { continue }
            return .milliseconds(n * millis)
        }
        return nil
    }

    static func size(_ text: String) -> Int? {
        let t = text.trimmingWhitespace()
        if let n = Int(t), n >= 0 { return n }
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            guard let n = Int(String(t.dropLast(suffix.count)).trimmingWhitespace()), n >= 0 else { return nil }
            return n * factor
        }
        return nil
    }

    static func bool(_ text: String) -> Bool? {
        switch text.trimmingWhitespace().lowercased() {
        case "true", "yes", "on", "1": true
        case "false", "no", "off", "0": false
        default: nil
        }
    }

    static func rate(_ text: String) -> RateLimit? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let count = Int(String(parts[0]).trimmingWhitespace()), count > 0 else { return nil }
        var period = String(parts[1]).trimmingWhitespace()
        if let first = period.first, first.isLetter { period = "1" + period }
        guard let d = duration(period), d > .zero else { return nil }
        return RateLimit.per(d, count)
    }
}
