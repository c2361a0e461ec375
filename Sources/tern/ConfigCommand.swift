import ArgumentParser
import Foundation
import TernConfig
import TernOps

/// `tern config check|keys`.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Inspect the configuration.", subcommands: [Check.self, Keys.self])

    /// Validates every source and prints either all problems or the effective values.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate the configuration; list every invalid key at once.")

        @OptionGroup var options: ConfigOptions

        func run() throws {
            let configuration = try options.load()
            print("configuration is valid")
            for entry in configuration.sources {
                print("\(entry.key) = \(entry.value)    # \(entry.source)")
            }
        }
    }

    /// Lists every key with its default, environment variable and meaning.
    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every configuration key.")

        func run() {
            for key in ConfigKeys.all {
                print("\(key.name) (\(key.environmentName)) default \"\(key.defaultValue)\"\n    \(key.help)")
            }
        }
    }
}
