import CLMDB
import Foundation

/// Short read-only transactions, reused.
///
/// A pooled transaction keeps its reader slot between uses (`mdb_txn_reset` /
/// `mdb_txn_renew`); with `MDB_NOTLS` the slot belongs to the transaction, not the thread,
/// so any thread may renew it. Each `read` sees the latest committed snapshot and the
/// snapshot is released before `read` returns, so readers never pin old pages for long.
public final class LMDBReadPool: @unchecked Sendable {
    private let environment: LMDBEnvironment
    private let capacity: Int
    private let lock = NSLock()
    private var idle: [OpaquePointer] = []
    private var closed = false

    /// `capacity` bounds the reader slots the pool keeps; further concurrent reads use
    /// one-off transactions.
    public init(environment: LMDBEnvironment, capacity: Int) {
        self.environment = environment
        self.capacity = max(1, capacity)
    }

    /// Runs `body` inside a read-only transaction, synchronously, on the calling thread.
    public func read<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        let txn = try acquire()
        let wrapper = LMDBTransaction(txn, readOnly: true)
        defer {
            wrapper.invalidate()
            release(txn)
        }
        return try body(wrapper)
    }

    private func acquire() throws -> OpaquePointer {
        lock.lock()
        if closed {
            lock.unlock()
            throw LMDBError(code: EBADF, operation: "read after the environment was closed")
        }
        let pooled = idle.popLast()
        lock.unlock()
        if let pooled {
            let rc = mdb_txn_renew(pooled)
            if rc == MDB_SUCCESS { return pooled }
            mdb_txn_abort(pooled)
        }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(environment.handle, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin(read)")
        return txn!
    }

    private func release(_ txn: OpaquePointer) {
        mdb_txn_reset(txn)
        lock.lock()
        if !closed && idle.count < capacity {
            idle.append(txn)
            lock.unlock()
        } else {
            lock.unlock()
            mdb_txn_abort(txn)
        }
    }

    /// Aborts the pooled transactions; call before closing the environment.
    public func close() {
        lock.lock()
        closed = true
        let all = idle
        idle = []
        lock.unlock()
        for txn in all { mdb_txn_abort(txn) }
    }
}
