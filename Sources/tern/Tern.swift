// The `tern` executable: a thin shell of subcommands over the library targets. It is the
// only place that bootstraps logging and Prometheus metrics.
import ArgumentParser
import TernOps

@main
struct Tern: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Tern: a WhatsApp-style messaging backend in one process.",
        version: "0.1.0",
        subcommands: [
            Serve.self, ConfigCommand.self, KeysCommand.self,
            // Operator tools (Ops/TernOps): read the live store read-only; writes go through the admin API.
            MailboxCommand.self, UsersCommand.self, DevicesCommand.self, ChatsCommand.self, StatsCommand.self,
            CheckCommand.self, BackupCommand.self, RestoreCommand.self,
        ],
        defaultSubcommand: Serve.self
    )
}
