import ArgumentParser
import Foundation
import TernConfig

/// Options shared by every command that reads the configuration.
public struct ConfigOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("config"), help: "Configuration file (TOML subset). Also TERN_CONFIG.")
    var configFile: String?

    @Option(name: .customLong("data"), help: "Data folder (data.dir).")
    var dataDirectory: String?

    @Option(name: .customLong("host"), help: "Listen address (http.host).")
    var host: String?

    @Option(name: .customLong("port"), help: "Listen port (http.port); 0 picks a free port.")
    var port: Int?

    @Option(name: .customLong("set"), help: "Set any key: --set store.durability=nosync (repeatable).")
    var settings: [String] = []

    /// Flag values as `key=value` overrides, after the environment.
    func overrides() throws -> [(String, String)] {
        var out: [(String, String)] = []
        for setting in settings {
            guard let eq = setting.firstIndex(of: "=") else {
                throw ValidationError("--set expects key=value, got \(setting)")
            }
            out.append((String(setting[..<eq]), String(setting[setting.index(after: eq)...])))
        }
        if let dataDirectory { out.append(("data.dir", dataDirectory)) }
        if let host { out.append(("http.host", host)) }
        if let port { out.append(("http.port", String(port))) }
        return out
    }

    /// The configuration file in use: `--config`, else `TERN_CONFIG`.
    var file: String? { configFile ?? ProcessInfo.processInfo.environment["TERN_CONFIG"] }

    /// Loads and validates; prints every problem and exits 1 if any.
    public func load() throws -> TernConfiguration {
        switch ConfigLoader.load(file: file, environment: ProcessInfo.processInfo.environment, overrides: try overrides()) {
        case .success(let configuration):
            return configuration
        case .failure(let errors):
            FileHandle.standardError.write(Data((errors.description + "\n").utf8))
            throw ExitCode(1)
        }
    }
}
