// The operator subcommands of `tern`: thin shells over `Inspector`, `Backup` and
// `AdminClient`. Reading commands open the store read-only beside the running server;
// writing commands call the admin API.
import ArgumentParser
import Foundation
import TernConfig
import TernCore
import TernStore

/// `--json` and the configuration options every reading command takes.
public struct ReadOptions: ParsableArguments {
    public init() {}

    @OptionGroup public var config: ConfigOptions

    @Flag(name: .customLong("json"), help: "Print JSON instead of a table.")
    public var json = false
}

/// Where the admin API is and its token.
public struct AdminOptions: ParsableArguments {
    public init() {}

    @OptionGroup public var config: ConfigOptions

    @Option(name: .customLong("admin-url"), help: "Admin API base URL (default: http://admin.host:admin.port).")
    public var url: String?

    @Option(name: .customLong("admin-token"), help: "Admin token (default: admin.token / TERN_ADMIN_TOKEN, else <data>/keys/admin.token).")
    public var token: String?

    @Flag(name: .customLong("json"), help: "Print the API's JSON answer.")
    public var json = false

    func client() throws -> AdminClient {
        try AdminClient.resolve(try config.load(), url: url, token: token)
    }

    /// POSTs to the admin API and prints its answer: the JSON with `--json`, else the line
    /// `summary` makes of it.
    func post(_ path: String, summary: ([String: Any]) -> String) async throws {
        try await post(user: nil, { _ in path }, summary: { data, _ in summary(data) })
    }

    /// The same for a user action: the admin endpoint is resolved first, then `user` (an id
    /// or a phone, read from the store) becomes the id `path` is made from.
    func post(
        user: String?, _ path: (String) -> String, summary: ([String: Any], String) -> String
    ) async throws {
        let client = try client()
        var id = ""
        if let user { id = try await UsersCommand.userID(user, config) }
        let data = try await client.post(path(id))
        print(json ? Output.json(any: data) : summary(data, id))
    }
}

/// Opens the store read-only, runs `body`, closes the store (also on error and on SIGINT).
func inspect<T>(_ options: ConfigOptions, _ body: (Inspector) throws -> T) async throws -> T {
    Interrupt.install()
    let configuration = try options.load()
    let inspector = try Inspector(storePath: configuration.storePath)
    do {
        let result = try body(inspector)
        await inspector.close()
        return result
    } catch {
        await inspector.close()
        throw commandError(error)
    }
}

/// SIGINT ends with 130; other errors print and end with 1.
func commandError(_ error: any Error) -> any Error {
    if let ops = error as? OpsError, ops.description == OpsError.interrupted.description {
        FileHandle.standardError.write(Data("interrupted\n".utf8))
        return ExitCode(130)
    }
    return error
}

func now() -> Timestamp { SystemClock().now() }

func parseDevice(_ text: String) throws -> UInt64 {
    guard let n = UInt64(text), n > 0 else { throw ValidationError("DEVICE is a device number (see `tern devices list`)") }
    return n
}

// MARK: mailbox

public struct MailboxCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mailbox", abstract: "Inspect and purge per-device mailboxes.",
        subcommands: [List.self, Show.self, Purge.self])

    public init() {}

    public struct List: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Devices with pending frames: count, bytes, oldest pending age.")
        public init() {}

        @OptionGroup var options: ReadOptions

        @Option(help: "Only this user's devices (user id).")
        var user: String?

        @Option(name: .customLong("min-pending"), help: "Leave out devices with fewer pending frames (0 lists every device).")
        var minPending = 1

        @Option(name: .customLong("older-than"), help: "Only devices whose oldest pending frame is older than this (e.g. 10m, 2h, 1d).")
        var olderThan: String?

        @Option(help: "Order: device (paged with --after), pending, bytes, age (the last three read every mailbox).")
        var sort = "device"

        @Option(help: "Rows to print.")
        var limit = 50

        @Option(help: "Device order: start after this device number (the previous page's last).")
        var after: UInt64?

        public func run() async throws {
            var query = MailboxQuery()
            if let user {
                guard let id = TernID(user) else { throw ValidationError("--user expects a user id") }
                query.user = id
            }
            guard let sort = MailboxSort(rawValue: sort) else {
                throw ValidationError("--sort is one of " + MailboxSort.allCases.map(\.rawValue).joined(separator: ", "))
            }
            if let olderThan {
                guard let d = ConfigValue.duration(olderThan) else { throw ValidationError("--older-than expects a duration such as 10m") }
                query.olderThan = d
            }
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
            query.sort = sort
            query.minPending = minPending
            query.limit = limit
            query.after = after
            let at = now()
            let page = try await inspect(options.config) { try $0.mailboxes(query, now: at) }
            if options.json { return print(Output.json(page)) }
            print(Output.table(
                ["DEVICE", "USER", "CLIENT DEVICE", "PLATFORM", "PENDING", "BYTES", "OLDEST AGE", "OLDEST SEQ"],
                page.rows.map {
                    [
                        "\($0.device)", $0.userID, $0.clientDeviceID, $0.platform, "\($0.pending)", "\($0.bytes)",
                        Output.age($0.oldestAgeSeconds), $0.oldestSeq.map { "\($0)" } ?? "-",
                    ]
                }))
            if let next = page.nextAfter { print("more: --after \(next)") }
        }
    }

    public struct Show: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "The pending frames of one device, in delivery order.")
        public init() {}

        @OptionGroup var options: ReadOptions

        @Argument(help: "Device number.")
        var device: String

        @Option(help: "Start after this sequence number (the previous page's last).")
        var after: UInt64?

        @Option(help: "Frames to print.")
        var limit = 50

        @Flag(help: "Also print each frame's data (message bodies: only when you need them).")
        var bodies = false

        public func run() async throws {
            let number = try parseDevice(device)
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
            let page = try await inspect(options.config) { try $0.mailboxFrames(device: number, after: after, limit: limit, bodies: bodies) }
            if options.json { return print(Output.json(page)) }
            print("device \(page.device): \(page.pending) pending")
            print(Output.table(
                ["SEQ", "KIND", "EVENT", "MESSAGE ID", "SENDER", "ENQUEUED AT", "BYTES"] + (bodies ? ["DATA"] : []),
                page.rows.map {
                    ["\($0.seq)", $0.kind, $0.event, $0.messageID, $0.senderID, $0.enqueuedAt ?? "-", "\($0.bytes)"]
                        + (bodies ? [$0.data ?? ""] : [])
                }))
            if let next = page.nextAfter { print("more: --after \(next)") }
        }
    }

    public struct Purge: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Delete every pending frame of a device (through the admin API); its live connection is closed.")
        public init() {}

        @OptionGroup var admin: AdminOptions

        @Argument(help: "Device number.")
        var device: String

        public func run() async throws {
            let number = try parseDevice(device)
            try await admin.post("devices/\(number)/purge") { "device \(number): \($0["purged"] ?? 0) pending frames deleted" }
        }
    }
}

// MARK: users

public struct UsersCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "users", abstract: "List and show users; revoke, disable, enable (admin API).",
        subcommands: [List.self, Show.self, Revoke.self, Disable.self, Enable.self])

    public init() {}

    public struct List: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Users in id order, paged.")
        public init() {}

        @OptionGroup var options: ReadOptions

        @Option(help: "Rows to print.")
        var limit = 50

        @Option(help: "Start after this user id (the previous page's last).")
        var after: String?

        public func run() async throws {
            var start: TernID?
            if let after {
                guard let id = TernID(after) else { throw ValidationError("--after expects a user id") }
                start = id
            }
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
            let page = try await inspect(options.config) { try $0.users(after: start, limit: limit) }
            if options.json { return print(Output.json(page)) }
            print(Output.table(
                ["USER", "PHONE", "NAME", "CREATED", "DISABLED", "DEVICES"],
                page.rows.map { [$0.id, $0.phone, $0.displayName, $0.createdAt, $0.disabled ? "yes" : "no", "\($0.devices)"] }))
            if let next = page.nextAfter { print("more: --after \(next)") }
        }
    }

    public struct Show: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "One user (by id or E.164 phone) with devices.")
        public init() {}

        @OptionGroup var options: ReadOptions

        @Argument(help: "User id or phone.")
        var user: String

        public func run() async throws {
            let at = now()
            let detail = try await inspect(options.config) { try $0.user(user, now: at) }
            if options.json { return print(Output.json(detail)) }
            let u = detail.user
            print("user \(u.id)  phone \(u.phone)  name \(u.displayName.isEmpty ? "-" : u.displayName)")
            print("created \(u.createdAt)  updated \(detail.updatedAt)  disabled \(u.disabled ? "yes" : "no")")
            print("chats \(detail.chats)  live sessions \(detail.liveSessions)")
            print(Output.devices(detail.devices))
        }
    }

    /// Resolves a phone to a user id by reading the store (ids pass through).
    static func userID(_ reference: String, _ configuration: ConfigOptions) async throws -> String {
        if TernID(reference) != nil { return reference }
        let at = now()
        return try await inspect(configuration) { try $0.user(reference, now: at).user.id }
    }

    public struct Revoke: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "End every session of a user (connections close).")
        public init() {}
        @OptionGroup var admin: AdminOptions
        @Argument(help: "User id or phone.") var user: String

        public func run() async throws {
            try await admin.post(user: user, { "users/\($0)/revoke" }) { data, id in "user \(id): \(data["sessions_revoked"] ?? 0) sessions revoked" }
        }
    }

    public struct Disable: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Disable a user: sessions end, login and tokens refused.")
        public init() {}
        @OptionGroup var admin: AdminOptions
        @Argument(help: "User id or phone.") var user: String

        public func run() async throws {
            try await admin.post(user: user, { "users/\($0)/disable" }) { data, id in
                "user \(id): disabled, \(data["sessions_revoked"] ?? 0) sessions revoked"
            }
        }
    }

    public struct Enable: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Let a disabled user log in again.")
        public init() {}
        @OptionGroup var admin: AdminOptions
        @Argument(help: "User id or phone.") var user: String

        public func run() async throws {
            try await admin.post(user: user, { "users/\($0)/enable" }) { _, id in "user \(id): enabled" }
        }
    }
}

// MARK: devices

public struct DevicesCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "devices", abstract: "List devices; revoke one or resend its push (admin API).",
        subcommands: [List.self, Revoke.self, Push.self])

    public init() {}

    public struct List: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Devices (all, paged, or one user's) with pending counts.")
        public init() {}

        @OptionGroup var options: ReadOptions

        @Option(help: "Only this user's devices (user id).")
        var user: String?

        @Option(help: "Rows to print.")
        var limit = 50

        @Option(help: "Start after this device number.")
        var after: UInt64?

        public func run() async throws {
            var owner: TernID?
            if let user {
                guard let id = TernID(user) else { throw ValidationError("--user expects a user id") }
                owner = id
            }
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
            let page = try await inspect(options.config) { try $0.devices(user: owner, after: after, limit: limit) }
            if options.json { return print(Output.json(page)) }
            print(Output.devices(page.rows))
            if let next = page.nextAfter { print("more: --after \(next)") }
        }
    }

    public struct Revoke: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "End a device's session (its connection closes).")
        public init() {}
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Device number.") var device: String

        public func run() async throws {
            let number = try parseDevice(device)
            try await admin.post("devices/\(number)/revoke") { "device \(number): \($0["sessions_revoked"] ?? 0) sessions revoked" }
        }
    }
}

extension DevicesCommand {
    public struct Push: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Resend a push to a device: tells its push tokens how many frames wait (admin API).")
        public init() {}
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Device number.") var device: String

        public func run() async throws {
            let number = try parseDevice(device)
            try await admin.post("devices/\(number)/push") {
                "device \(number): push sent to \($0["tokens"] ?? 0) tokens (\($0["pending"] ?? 0) frames pending)"
            }
        }
    }
}

// MARK: chats

public struct ChatsCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "chats", abstract: "Show a chat with its members and roles.", subcommands: [Show.self])

    public init() {}

    public struct Show: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "A chat, its head and its members.")
        public init() {}

        @OptionGroup var options: ReadOptions

        @Argument(help: "Chat id.")
        var chat: String

        public func run() async throws {
            guard let id = TernID(chat) else { throw ValidationError("CHAT is a chat id") }
            let detail = try await inspect(options.config) { try $0.chat(id) }
            if options.json { return print(Output.json(detail)) }
            print("chat \(detail.id)  \(detail.kind)\(detail.name.isEmpty ? "" : "  \"\(detail.name)\"")\(detail.adminOnly ? "  admin-only" : "")")
            print("created \(detail.createdAt) by \(detail.createdBy)  last seq \(detail.lastSeq)  last activity \(detail.lastActivity ?? "-")")
            print(Output.table(
                ["USER", "PHONE", "NAME", "ROLE", "JOINED", "FIRST SEQ"],
                detail.members.map { [$0.userID, $0.phone, $0.displayName, $0.role, $0.joinedAt, $0.firstSeq.map { "\($0)" } ?? "-"] }))
        }
    }
}

// MARK: stats, check

public struct StatsCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Counts, mailbox totals and depth histogram, map and reader usage.")
    public init() {}

    @OptionGroup var options: ReadOptions

    public func run() async throws {
        let at = now()
        Interrupt.install()
        let configuration = try options.config.load()
        let inspector = try Inspector(storePath: configuration.storePath)
        let stats: StoreStats
        do {
            stats = try await inspector.stats(now: at)
            await inspector.close()
        } catch {
            await inspector.close()
            throw commandError(error)
        }
        if options.json { return print(Output.json(stats)) }
        print(Output.table(["", "COUNT"], [
            ["users", "\(stats.users)"], ["devices", "\(stats.devices)"], ["sessions", "\(stats.sessions)"],
            ["chats", "\(stats.chats)"], ["chat members", "\(stats.chatMembers)"], ["messages (history)", "\(stats.messages)"],
            ["receipts", "\(stats.receipts)"], ["mailbox entries", "\(stats.mailboxEntries)"],
            ["mailbox bytes", "\(stats.mailboxBytes)"], ["devices with pending", "\(stats.mailboxDevices)"],
            ["deepest mailbox", "\(stats.maxDepth)"], ["oldest pending", Output.age(stats.oldestPendingAgeSeconds)],
        ]))
        print("")
        print(Output.table(["DEPTH", "DEVICES"], stats.depthHistogram.map { [$0.depth, "\($0.devices)"] }))
        print("")
        print("map: \(stats.mapUsedBytes) of \(stats.mapSizeBytes) bytes used (\(stats.mapUsedPercent)%), page \(stats.pageSize) B, \(stats.usedPages) pages, \(stats.freePages) free (reusable)")
        print("readers: \(stats.readersInUse) of \(stats.maxReaders) slots in use; last transaction \(stats.lastTransactionID)")
    }
}

public struct CheckCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Cross-reference integrity check (reads only; exit 1 if a problem is found).")
    public init() {}

    @OptionGroup var options: ReadOptions

    @Option(help: "Problems to list at most (all are counted).")
    var limit = 100

    public func run() async throws {
        let report = try await inspect(options.config) { try $0.check(limit: limit) }
        if options.json {
            print(Output.json(report))
        } else {
            let checked = report.checked.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("checked: \(checked)")
            if report.ok {
                print("no problems found")
            } else {
                print(Output.table(["RULE", "COUNT"], report.counts.sorted { $0.key < $1.key }.map { [$0.key, "\($0.value)"] }))
                print(Output.table(["RULE", "KEY", "DETAIL"], report.problems.map { [$0.rule, $0.key, $0.detail] }))
            }
        }
        if !report.ok { throw ExitCode(1) }
    }
}

// MARK: backup, restore

public struct BackupCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Hot, consistent, compacted copy of the store (and keys) into a new folder.")
    public init() {}

    @OptionGroup var options: ReadOptions

    @Argument(help: "Destination folder (must not exist or be empty).")
    var destination: String

    public func run() async throws {
        Interrupt.install()
        let configuration = try options.config.load()
        let manifest: BackupManifest
        do {
            manifest = try await Backup.create(dataDirectory: configuration.dataDirectory, to: destination, now: now())
        } catch {
            throw commandError(error)
        }
        if options.json { return print(Output.json(manifest)) }
        print("backup written to \(destination): \(manifest.storeBytes) bytes, keys \(manifest.includesKeys ? "included" : "not found")")
        print(Output.table(["TABLE", "ENTRIES"], manifest.counts.sorted { $0.key < $1.key }.map { [$0.key, "\($0.value)"] }))
    }
}

public struct RestoreCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Verify a backup (opens, counts match, integrity check) and restore it into the data folder.")
    public init() {}

    @OptionGroup var options: ReadOptions

    @Argument(help: "Backup folder written by `tern backup`.")
    var source: String

    @Flag(name: .customLong("verify-only"), help: "Only verify the backup; change nothing.")
    var verifyOnly = false

    @Flag(help: "Replace an existing store (kept as store.replaced-<time>). The server must be stopped.")
    var force = false

    public func run() async throws {
        let configuration = try options.config.load()
        let verification = verifyOnly
            ? try await Backup.verify(source)
            : try await Backup.restore(from: source, into: configuration.dataDirectory, force: force, now: now())
        if options.json {
            print(Output.json(verification))
        } else {
            print("backup of \(verification.manifest.createdAt): counts \(verification.countsMatch ? "match" : "DO NOT match") the manifest, integrity \(verification.check.ok ? "ok" : "PROBLEMS: \(verification.check.counts)")")
            if !verifyOnly { print("restored into \(configuration.dataDirectory)/store") }
        }
        if !verification.ok { throw ExitCode(1) }
    }
}

// MARK: output

enum Output {
    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    static func json(any value: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Columns padded to their widest cell; numeric columns right-aligned.
    static func table(_ headers: [String], _ rows: [[String]]) -> String {
        if rows.isEmpty { return "(none)" }
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        let numeric = headers.indices.map { i in rows.allSatisfy { i < $0.count && (Double($0[i]) != nil || $0[i] == "-") } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                return numeric[i] ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmedAtEnd
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }

    static func devices(_ rows: [DeviceRow]) -> String {
        table(
            ["DEVICE", "USER", "CLIENT DEVICE", "NAME", "PLATFORM", "ACTIVE", "LAST LOGIN", "PENDING"],
            rows.map {
                ["\($0.device)", $0.userID, $0.clientDeviceID, $0.name, $0.platform, $0.active ? "yes" : "no", $0.lastLoginAt, "\($0.pending)"]
            })
    }

    /// `95s` → `1m35s`, `7300s` → `2h01m`, days past 48 h.
    static func age(_ seconds: Int64?) -> String {
        guard let s = seconds else { return "-" }
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        if s < 172_800 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
        return "\(s / 86_400)d\(String(format: "%02d", (s % 86_400) / 3600))h"
    }
}

extension String {
    /// Without trailing spaces (leading ones align numbers).
    var trimmedAtEnd: String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
