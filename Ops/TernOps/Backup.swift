import Foundation
import TernCore
import TernLMDB
import TernStore

/// What a backup folder holds, written next to it as `manifest.json`.
public struct BackupManifest: Codable, Sendable {
    public var format = 1
    public var createdAt: String
    public var schemaVersion: UInt32
    /// Entries per table in the copied store (counted in the copy itself).
    public var counts: [String: Int]
    public var storeBytes: Int
    /// Whether the signing keys and secrets (`keys/`) were copied too.
    public var includesKeys: Bool
}

/// Result of checking a backup folder.
public struct BackupVerification: Codable, Sendable {
    public var manifest: BackupManifest
    public var counts: [String: Int]
    public var countsMatch: Bool
    public var check: CheckReport
    public var ok: Bool { countsMatch && check.ok }
}

/// Hot backup, verification and restore of a data folder.
///
/// Layout of a backup folder: `store/data.mdb` (LMDB's compacting copy), `keys/` (the
/// signing keys, OTP and admin secrets, mode 0700), `manifest.json`.
public enum Backup {
    /// Copies the live store at `dataDirectory` into the new folder `destination` while the
    /// server keeps serving. The copy is one consistent snapshot (LMDB's `MDB_CP_COMPACT`
    /// copy runs in one read transaction and does not take the writer's lock); free pages
    /// are left out, so the copy is often much smaller than the live file.
    public static func create(dataDirectory: String, to destination: String, now: Timestamp) async throws -> BackupManifest {
        let fm = FileManager.default
        if fm.fileExists(atPath: destination) {
            let contents = (try? fm.contentsOfDirectory(atPath: destination)) ?? ["?"]
            guard contents.isEmpty else { throw OpsError("\(destination) exists and is not empty; back up into a new folder") }
        }
        try fm.createDirectory(atPath: destination + "/store", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let inspector = try Inspector(storePath: dataDirectory + "/store")
        do {
            try Interrupt.check()
            try inspector.store.environment.copy(to: destination + "/store", compact: true)
        } catch {
            await inspector.close()
            try? fm.removeItem(atPath: destination)
            throw error is OpsError ? error : OpsError("backup failed: \(error)")
        }
        await inspector.close()
        // The copy holds every message: owner-only, like the live store.
        chmod(destination + "/store/data.mdb", 0o600)
        let keys = dataDirectory + "/keys"
        var includesKeys = false
        if fm.fileExists(atPath: keys) {
            try fm.createDirectory(atPath: destination + "/keys", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for name in try fm.contentsOfDirectory(atPath: keys) where !name.contains(".tmp") {
                try fm.copyItem(atPath: keys + "/" + name, toPath: destination + "/keys/" + name)
            }
            includesKeys = true
        }
        let counts = try await Self.counts(storePath: destination + "/store")
        let size = ((try? fm.attributesOfItem(atPath: destination + "/store/data.mdb"))?[.size] as? Int) ?? 0
        let manifest = BackupManifest(
            createdAt: now.rfc3339, schemaVersion: Schema.version, counts: counts, storeBytes: size, includesKeys: includesKeys)
        let data = try Self.encoder.encode(manifest)
        try data.write(to: URL(fileURLWithPath: destination + "/manifest.json"), options: .atomic)
        chmod(destination + "/manifest.json", 0o600)
        // The copy opened read-only left a lock file; a restore does not need it.
        try? fm.removeItem(atPath: destination + "/store/lock.mdb")
        return manifest
    }

    /// Opens the backup at `path`, compares its table counts with its manifest and runs the
    /// integrity check on it. Reads only.
    public static func verify(_ path: String) async throws -> BackupVerification {
        guard let data = FileManager.default.contents(atPath: path + "/manifest.json") else {
            throw OpsError("\(path) is not a Tern backup (no manifest.json)")
        }
        let manifest: BackupManifest
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            manifest = try decoder.decode(BackupManifest.self, from: data)
        } catch {
            throw OpsError("\(path)/manifest.json is unreadable: \(error)")
        }
        let counts = try await Self.counts(storePath: path + "/store")
        let inspector = try Inspector(storePath: path + "/store")
        let report: CheckReport
        do {
            report = try inspector.check()
        } catch {
            await inspector.close()
            throw error
        }
        await inspector.close()
        try? FileManager.default.removeItem(atPath: path + "/store/lock.mdb")
        return BackupVerification(manifest: manifest, counts: counts, countsMatch: counts == manifest.counts, check: report)
    }

    /// Restores the verified backup at `path` into `dataDirectory`. Refuses when the target
    /// store exists unless `force`, and always when a process has it open (a running
    /// server); with `force` the old store is kept beside it as `store.replaced-<time>`.
    public static func restore(from path: String, into dataDirectory: String, force: Bool, now: Timestamp) async throws -> BackupVerification {
        let verification = try await verify(path)
        guard verification.ok else {
            throw OpsError("the backup at \(path) did not verify (counts match: \(verification.countsMatch), problems: \(verification.check.counts)); nothing restored")
        }
        let fm = FileManager.default
        let store = dataDirectory + "/store"
        if fm.fileExists(atPath: store + "/data.mdb") {
            guard force else {
                throw OpsError("a store exists at \(store); stop the server and pass --force to replace it (it is kept as store.replaced-<time>)")
            }
            let users = Self.processesMapping(store + "/data.mdb")
            guard users.isEmpty else {
                throw OpsError("the store at \(store) is open in process \(users.map(String.init).joined(separator: ", ")) (a running server?); stop it first")
            }
            let stamp = now.rfc3339.replacingOccurrences(of: ":", with: "")
            try fm.moveItem(atPath: store, toPath: dataDirectory + "/store.replaced-\(stamp)")
        }
        try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let staging = dataDirectory + "/store.restoring"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try copySynced(from: path + "/store/data.mdb", to: staging + "/data.mdb")
        try fm.moveItem(atPath: staging, toPath: store)
        if verification.manifest.includesKeys {
            let keys = dataDirectory + "/keys"
            if fm.fileExists(atPath: keys) && force {
                let stamp = now.rfc3339.replacingOccurrences(of: ":", with: "")
                try fm.moveItem(atPath: keys, toPath: dataDirectory + "/keys.replaced-\(stamp)")
            }
            if !fm.fileExists(atPath: keys) {
                try fm.copyItem(atPath: path + "/keys", toPath: keys)
            }
        }
        return verification
    }

    /// Entries per table, from LMDB's counters, in one short read transaction.
    static func counts(storePath: String) async throws -> [String: Int] {
        let inspector = try Inspector(storePath: storePath)
        let tables = inspector.store.tables
        let all: [(String, LMDBDatabase)] = [
            ("users", tables.users), ("devices", tables.devices), ("sessions", tables.sessions), ("chats", tables.chats),
            ("chat_members", tables.chatMembers), ("messages", tables.messages), ("receipts", tables.receipts),
            ("mailbox", tables.mailbox),
        ]
        let counts: [String: Int]
        do {
            counts = try inspector.read { tx in
                try Dictionary(uniqueKeysWithValues: all.map { ($0.0, try tx.count($0.1)) })
            }
        } catch {
            await inspector.close()
            throw error
        }
        await inspector.close()
        return counts
    }

    /// Processes (other than this one) that have `file` mapped, from `/proc/*/maps`: a
    /// running server maps its `data.mdb` for as long as the store is open.
    static func processesMapping(_ file: String) -> [Int32] {
        guard let real = realpath(file, nil) else { return [] }
        let path = String(cString: real)
        free(real)
        let me = getpid()
        var found: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != me,
                let maps = try? String(contentsOfFile: "/proc/\(entry)/maps", encoding: .utf8)
            else { continue }
            if maps.contains(path) { found.append(pid) }
        }
        return found
    }

    /// Copies a file and fsyncs the copy.
    static func copySynced(from source: String, to destination: String) throws {
        try FileManager.default.copyItem(atPath: source, toPath: destination)
        let fd = open(destination, O_RDONLY)
        guard fd >= 0 else { throw OpsError("cannot open \(destination) to sync it") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw OpsError("fsync of \(destination) failed: errno \(errno)") }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }()
}
