import ArgumentParser
import Foundation
import TernAuth
import TernConfig
import TernOps
import TernCore

/// `tern keys rotate|list`: signing keys in `<data>/keys`.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage token signing keys.", subcommands: [Rotate.self, List.self])

    /// Adds a new signing key. New tokens are signed with it once the server re-reads the
    /// key folder (auth.key_reload_interval); tokens signed with older keys keep verifying.
    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a new signing key; older keys keep verifying.")

        @OptionGroup var options: ConfigOptions

        func run() throws {
            let configuration = try options.load()
            let key = try KeyRing.create(in: configuration.keysPath, clock: SystemClock())
            print("new signing key \(key.kid) (created \(key.createdAt.rfc3339))")
            print("a running server signs with it within \(configuration.keyReloadInterval.wholeSeconds)s; older keys still verify")
        }
    }

    /// Lists the keys, newest (the signing one) last.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List signing keys (newest signs).")

        @OptionGroup var options: ConfigOptions

        func run() throws {
            let configuration = try options.load()
            let ring = try KeyRing(directory: configuration.keysPath, clock: SystemClock(), createIfEmpty: false)
            let active = ring.active.kid
            for key in ring.all {
                print("\(key.kid)  created \(key.createdAt.rfc3339)\(key.kid == active ? "  (signing)" : "")")
            }
        }
    }
}
