import Foundation
import Logging

/// `log.format = json`: one JSON object per line on stderr, for log shippers. Metadata keys
/// are top-level fields next to `time`, `level`, `label`, `source` and `message`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        var fields = metadata
        if let explicit { fields.merge(explicit) { $1 } }
        var out = "{\"time\":\(Self.quote(Date().ISO8601Format(.iso8601.time(includingFractionalSeconds: true).year().month().day().dateSeparator(.dash).timeSeparator(.colon)) + "Z")),"
        out += "\"level\":\(Self.quote(level.rawValue)),\"label\":\(Self.quote(label)),\"source\":\(Self.quote(source)),"
        out += "\"message\":\(Self.quote(message.description))"
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) where !Self.reserved.contains(key) {
            out += ",\(Self.quote(key)):\(Self.quote(Self.text(value)))"
        }
        out += "}\n"
        let bytes = Array(out.utf8)
        bytes.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    private static let reserved: Set<String> = ["time", "level", "label", "source", "message"]

    private static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array, .dictionary: value.description
        }
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
