// TernLMDB owns every unsafe call into LMDB (liblmdb 0.9, Debian's liblmdb-dev).
//
// What it promises:
// - An environment is opened once per process with MDB_NOTLS and never MDB_WRITEMAP (a full
//   disk with WRITEMAP kills the process with SIGBUS; without it a commit fails cleanly).
// - Every transaction lives inside one synchronous closure and is invalidated when the
//   closure returns. `LMDBTransaction` is not Sendable, so strict concurrency keeps it from
//   crossing an `await`.
// - All writes run on one dedicated thread (`GroupCommitWriter`) that commits batches:
//   a write transaction begun and committed on different threads leaves LMDB's writer
//   mutex held.
// - Reads use reset/renewed read-only transactions from `LMDBReadPool` on any thread.
//
// Concurrency contract: `LMDBEnvironment` is safe to share; its handle is immutable after
// `init` and LMDB's environment calls are thread-safe. `close()` must run only after the
// writer and every reader are finished.
import CLMDB
import Foundation

/// How a commit reaches the disk.
public enum LMDBDurability: String, Sendable, CaseIterable {
    /// Default: `mdb_txn_commit` flushes data and meta page (fdatasync) before returning.
    case sync
    /// `MDB_NOSYNC`: commits return before the OS has written them. A power loss or kernel
    /// crash can lose the last commits (a process crash cannot). The store syncs on a timer.
    case nosync
}

/// Parameters of an LMDB environment.
public struct LMDBConfiguration: Sendable {
    /// Maximum size of the data file; LMDB reserves this much address space. Must be a
    /// multiple of the OS page size (rounded up here).
    public var mapSize: Int
    /// Reader slots shared by every process that opens the environment.
    public var maxReaders: UInt32
    /// Number of named databases the environment may hold.
    public var maxDatabases: UInt32
    public var durability: LMDBDurability
    /// Open with `MDB_RDONLY` (ops tools beside a running server).
    public var readOnly: Bool
    /// Permission bits for newly created `data.mdb` / `lock.mdb`.
    public var fileMode: UInt32

    public init(
        mapSize: Int = 8 << 30,
        maxReaders: UInt32 = 126,
        maxDatabases: UInt32 = 32,
        durability: LMDBDurability = .sync,
        readOnly: Bool = false,
        fileMode: UInt32 = 0o600
    ) {
        self.mapSize = mapSize
        self.maxReaders = maxReaders
        self.maxDatabases = maxDatabases
        self.durability = durability
        self.readOnly = readOnly
        self.fileMode = fileMode
    }
}

/// A handle to a named database inside an environment (an `MDB_dbi`).
public struct LMDBDatabase: Sendable, Hashable {
    public let name: String
    let dbi: MDB_dbi
    /// LMDB's small integer handle of the database (stable while the environment is open).
    public var slot: Int { Int(dbi) }
}

/// Space and reader usage of an environment, for readiness checks and metrics.
public struct LMDBUsage: Sendable {
    public var mapSize: Int
    public var pageSize: Int
    /// Pages in use up to the highest one ever allocated (the file's high-water mark).
    public var usedPages: Int
    public var maxReaders: Int
    /// Reader slots held by live or dead readers now (from `mdb_reader_list`).
    public var readersInUse: Int
    /// Highest number of reader slots ever used at once (LMDB's `me_numreaders`).
    public var readerSlotsUsed: Int
    public var lastTransactionID: Int

    public var usedBytes: Int { usedPages * pageSize }
    public var usedFraction: Double { mapSize == 0 ? 0 : Double(usedBytes) / Double(mapSize) }
}

/// One open LMDB environment (a directory holding `data.mdb` and `lock.mdb`).
public final class LMDBEnvironment: @unchecked Sendable {
    let handle: OpaquePointer
    public let path: String
    public let configuration: LMDBConfiguration
    private let closed = LockedFlag()

    /// Opens (creating the directory if needed) the environment at `path`.
    public init(path: String, configuration: LMDBConfiguration) throws {
        self.path = path
        self.configuration = configuration
        if !configuration.readOnly {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
        do {
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let mapSize = (configuration.mapSize + page - 1) / page * page
            try check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize")
            try check(mdb_env_set_maxreaders(env, configuration.maxReaders), "mdb_env_set_maxreaders")
            try check(mdb_env_set_maxdbs(env, MDB_dbi(configuration.maxDatabases)), "mdb_env_set_maxdbs")
            var flags = UInt32(MDB_NOTLS)
            if configuration.durability == .nosync { flags |= UInt32(MDB_NOSYNC) }
            if configuration.readOnly { flags |= UInt32(MDB_RDONLY) }
            try check(mdb_env_open(env, path, flags, mdb_mode_t(configuration.fileMode)), "mdb_env_open(\(path))")
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.handle = env
    }

    deinit { close() }

    /// Closes the environment. Every transaction must be finished; idempotent.
    public func close() {
        if closed.set() { mdb_env_close(handle) }
    }

    /// Opens (and with `create`, creates) a named database. Call during start-up, before
    /// concurrent use: LMDB requires `mdb_dbi_open` not to race with other opens.
    public func openDatabase(_ name: String, create: Bool) throws -> LMDBDatabase {
        var txn: OpaquePointer?
        let readOnly = configuration.readOnly || !create
        try check(mdb_txn_begin(handle, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn), "mdb_txn_begin")
        var dbi: MDB_dbi = 0
        let rc = mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if rc != MDB_SUCCESS {
            mdb_txn_abort(txn)
            throw LMDBError(code: rc, operation: "mdb_dbi_open(\(name))")
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit(open \(name))")
        return LMDBDatabase(name: name, dbi: dbi)
    }

    /// Runs `body` in a write transaction on the calling thread and commits it. For
    /// start-up (schema checks) and tools, never concurrently with a `GroupCommitWriter`
    /// on the same environment (it would wait for the writer's lock).
    public func withWriteTransaction<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        precondition(!configuration.readOnly, "write in a read-only environment")
        var raw: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, 0, &raw), "mdb_txn_begin(write)")
        let txn = LMDBTransaction(raw!, readOnly: false)
        let result: T
        do {
            result = try body(txn)
        } catch {
            txn.invalidate()
            mdb_txn_abort(raw)
            throw error
        }
        txn.invalidate()
        try check(mdb_txn_commit(raw), "mdb_txn_commit")
        return result
    }

    /// Runs `body` in a one-off read-only transaction on the calling thread.
    public func withReadTransaction<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        var raw: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &raw), "mdb_txn_begin(read)")
        let txn = LMDBTransaction(raw!, readOnly: true)
        defer {
            txn.invalidate()
            mdb_txn_abort(raw)
        }
        return try body(txn)
    }

    /// Clears reader slots left by processes that died without closing (e.g. `kill -9` of
    /// an ops tool). A stale slot pins old pages and makes the file grow under churn.
    /// Returns the number of slots cleared.
    @discardableResult
    public func clearStaleReaders() throws -> Int {
        var dead: Int32 = 0
        try check(mdb_reader_check(handle, &dead), "mdb_reader_check")
        return Int(dead)
    }

    /// Reader slots currently taken (by any process, live or not yet found dead).
    public func readerCount() throws -> Int {
        final class Lines { var count = 0 }
        let lines = Lines()
        let rc = withExtendedLifetime(lines) {
            mdb_reader_list(handle, { message, context in
                guard let message, let context else { return 0 }
                let text = String(cString: message)
                // One header line ("    pid     thread     txnid"), then one line per reader,
                // or "(no active readers)".
                if !text.contains("pid") && !text.contains("no active readers") {
                    Unmanaged<Lines>.fromOpaque(context).takeUnretainedValue().count += 1
                }
                return 0
            }, Unmanaged.passUnretained(lines).toOpaque())
        }
        if rc < 0 { throw LMDBError(code: rc, operation: "mdb_reader_list") }
        return lines.count
    }

    /// Flushes buffers to disk; with `.nosync` this is what makes earlier commits durable.
    public func sync(force: Bool = true) throws {
        try check(mdb_env_sync(handle, force ? 1 : 0), "mdb_env_sync")
    }

    /// Current map, page and reader usage.
    public func usage() throws -> LMDBUsage {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        try check(mdb_env_info(handle, &info), "mdb_env_info")
        try check(mdb_env_stat(handle, &stat), "mdb_env_stat")
        return LMDBUsage(
            mapSize: info.me_mapsize,
            pageSize: Int(stat.ms_psize),
            usedPages: info.me_last_pgno + 1,
            maxReaders: Int(info.me_maxreaders),
            readersInUse: try readerCount(),
            readerSlotsUsed: Int(info.me_numreaders),
            lastTransactionID: info.me_last_txnid
        )
    }

    /// Copies the environment to `directory` while it is in use (a consistent snapshot).
    /// `compact` omits free pages and renumbers, producing a smaller file.
    public func copy(to directory: String, compact: Bool) throws {
        try check(mdb_env_copy2(handle, directory, compact ? UInt32(MDB_CP_COMPACT) : 0), "mdb_env_copy2")
    }

    /// The linked library's version, e.g. "LMDB 0.9.24: (July 24, 2019)".
    public static var libraryVersion: String { String(cString: tern_mdb_version_string()) }
}

/// A flag that flips once, safely from any thread.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    /// Sets the flag; returns true if this call was the one that set it.
    func set() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if value { return false }
        value = true
        return true
    }
}
