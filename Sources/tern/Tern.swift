// The `tern` executable: a thin shell of subcommands over the library targets. It is the
// only place that bootstraps logging and Prometheus metrics.
import ArgumentParser

@main
struct Tern: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Tern: a WhatsApp-style messaging backend in one process.",
        version: "0.1.0",
        subcommands: [Serve.self, ConfigCommand.self, KeysCommand.self],
        defaultSubcommand: Serve.self
    )
}
