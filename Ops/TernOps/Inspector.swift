// TernOps: the operator's view of a Tern store, from a process other than the server.
//
// What it promises:
// - The store is opened read-only (`MDB_RDONLY`) beside a running server: the writer is
//   never blocked, and every read sees committed data only.
// - Every listing reads in pages, one short read transaction per page (`pageSize` entries),
//   resuming after the last key seen. A reader never pins old pages for long, so the data
//   file does not grow while an operator looks around.
// - SIGINT/SIGTERM stop a command between pages; the store is closed and the reader slot
//   released before exit. A `kill -9` leaves a stale slot that the server's periodic
//   `mdb_reader_check` (store.stale_reader_check) clears.
//
// Concurrency contract: an `Inspector` is used by one command at a time; its reads run
// synchronously on the calling thread.
import Foundation
import Logging
import Synchronization
import TernCore
import TernLMDB
import TernStore

/// An error an operator command reports (message on stderr, exit code 1).
public struct OpsError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }

    /// The command stopped on SIGINT/SIGTERM (exit code 130).
    public static let interrupted = OpsError("interrupted")
}

/// SIGINT/SIGTERM handling for commands that read in pages: the first signal asks the
/// command to stop at the next page boundary; a second one exits at once.
public enum Interrupt {
    static let requested = Atomic<Bool>(false)

    public static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in
            if Interrupt.requested.exchange(true, ordering: .relaxed) { _exit(130) }
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }

    /// Throws `OpsError.interrupted` once a signal arrived.
    public static func check() throws {
        if requested.load(ordering: .relaxed) { throw OpsError.interrupted }
    }
}

/// Read-only access to the store at `storePath` for one operator command.
public final class Inspector: Sendable {
    public let store: Store
    /// Entries visited per read transaction.
    public let pageSize: Int

    public init(storePath: String, pageSize: Int = 2000) throws {
        guard FileManager.default.fileExists(atPath: storePath + "/data.mdb") else {
            throw OpsError("no Tern store at \(storePath) (is --data / data.dir right?)")
        }
        var logger = Logger(label: "tern.ops")
        logger.logLevel = .warning
        do {
            store = try Store(configuration: StoreConfiguration(path: storePath, readThreads: 1, readOnly: true), logger: logger)
        } catch {
            throw OpsError("cannot open the store at \(storePath): \(error)")
        }
        self.pageSize = max(1, pageSize)
    }

    /// Releases the reader slots and unmaps the store.
    public func close() async { await store.close() }

    /// One short read transaction.
    public func read<T>(_ body: (ReadTx) throws -> T) throws -> T {
        try Interrupt.check()
        return try store.readNow(body)
    }

    /// Visits the keys of `table` in `[lower, upper)` in order, `pageSize` entries per read
    /// transaction, until `body` returns false. `body` runs inside the page's transaction,
    /// so lookups it makes are consistent with the entry it is given.
    public func scan(
        _ table: (Tables) -> LMDBDatabase,
        from lower: [UInt8]? = nil,
        to upper: [UInt8]? = nil,
        _ body: (_ tx: ReadTx, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let db = table(store.tables)
        var next = lower
        while true {
            var seen = 0
            var stopped = false
            var last: [UInt8] = []
            try read { tx in
                try tx.scan(db, from: next, to: upper) { key, value in
                    if try !body(tx, key, value) {
                        stopped = true
                        return false
                    }
                    seen += 1
                    if seen == pageSize {
                        last = Array(key)
                        return false
                    }
                    return true
                }
            }
            if stopped || seen < pageSize { return }
            // The smallest key after `last`.
            next = last + [0]
        }
    }

    /// Visits the keys starting with `prefix`, in pages.
    public func scan(
        _ table: (Tables) -> LMDBDatabase,
        prefix: [UInt8],
        _ body: (_ tx: ReadTx, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try scan(table, from: prefix, to: prefixUpperBound(prefix), body)
    }
}

extension UnsafeRawBufferPointer {
    /// The big-endian u64 at `offset`.
    func u64(at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(self[offset + i]) }
        return v
    }

    /// The 16-byte id at `offset`.
    func id(at offset: Int) -> TernID? {
        guard count >= offset + 16 else { return nil }
        return TernID(bytes: UnsafeRawBufferPointer(rebasing: self[offset..<offset + 16]))
    }
}
