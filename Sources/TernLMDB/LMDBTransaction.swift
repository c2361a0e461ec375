import CLMDB
import Foundation

/// A live LMDB transaction, valid only inside the closure it was handed to.
///
/// Not `Sendable` on purpose: it cannot be captured by a task or held across an `await`.
/// Buffers passed to callbacks point into the memory map and are valid only during the
/// callback; `get` returns a copy.
public final class LMDBTransaction {
    private var txn: OpaquePointer?
    /// True for read-only transactions (from the read pool).
    public let isReadOnly: Bool
    /// Number of successful puts/deletes; the writer uses it to know whether a failed
    /// closure left changes behind.
    public private(set) var mutationCount = 0
    /// Set when a write operation failed in a way that leaves LMDB's transaction unusable
    /// (`MDB_MAP_FULL`, `MDB_TXN_FULL`, I/O errors).
    public private(set) var poison: LMDBError?

    init(_ txn: OpaquePointer, readOnly: Bool) {
        self.txn = txn
        self.isReadOnly = readOnly
    }

    /// Ends the wrapper's life; any later use traps.
    func invalidate() { txn = nil }

    @inline(__always)
    private var handle: OpaquePointer {
        guard let txn else { preconditionFailure("LMDB transaction used after its closure returned") }
        return txn
    }

    // MARK: reads

    /// Calls `body` with the value stored under `key`, or returns nil if there is none.
    public func withValue<R>(
        _ db: LMDBDatabase, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try key.withUnsafeBytes { try withValue(db, key: $0, body) }
    }

    /// Calls `body` with a reader for point reads of keys that mostly follow each other in
    /// key order (`LMDBSequentialReader`), valid only inside `body`.
    public func withSequentialReader<R>(_ db: LMDBDatabase, _ body: (inout LMDBSequentialReader) throws -> R) throws -> R {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(cursor) }
        var reader = LMDBSequentialReader(cursor: cursor!, db: db)
        return try body(&reader)
    }

    /// `withValue` for a key kept inline.
    public func withValue<R>(
        _ db: LMDBDatabase, _ key: InlineBytes, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try key.withUnsafeBytes { try withValue(db, key: $0, body) }
    }

    private func withValue<R>(
        _ db: LMDBDatabase, key kb: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        var v = MDB_val()
        var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
        let rc = mdb_get(handle, db.dbi, &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get(\(db.name))")
        return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// A copy of the value stored under `key`.
    public func get(_ db: LMDBDatabase, _ key: [UInt8]) throws -> [UInt8]? {
        try withValue(db, key) { Array($0) }
    }

    /// Whether `key` exists.
    public func contains(_ db: LMDBDatabase, _ key: [UInt8]) throws -> Bool {
        try withValue(db, key) { _ in true } ?? false
    }

    /// Pages on LMDB's free list (reusable without growing the file): the sum of the page
    /// counts stored in the free database (dbi 0), each value starting with its count.
    public func freePageCount() throws -> Int {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, 0, &cursor), "mdb_cursor_open(free list)")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var total = 0
        var rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        while rc == MDB_SUCCESS {
            if v.mv_size >= MemoryLayout<Int>.size, let data = v.mv_data {
                total += data.loadUnaligned(as: Int.self)
            }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get(free list)") }
        return total
    }

    /// Number of entries in `db`.
    public func count(_ db: LMDBDatabase) throws -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(handle, db.dbi, &stat), "mdb_stat(\(db.name))")
        return stat.ms_entries
    }

    // MARK: writes

    /// Stores `value` under `key`. With `overwrite: false` an existing key is left alone
    /// and the call returns false.
    @discardableResult
    public func put(_ db: LMDBDatabase, _ key: [UInt8], _ value: [UInt8], overwrite: Bool = true) throws -> Bool {
        try key.withUnsafeBytes { kb in try value.withUnsafeBytes { vb in try put(db, key: kb, value: vb, overwrite: overwrite) } }
    }

    /// `put` for a key kept inline.
    @discardableResult
    public func put(_ db: LMDBDatabase, _ key: InlineBytes, _ value: [UInt8], overwrite: Bool = true) throws -> Bool {
        try key.withUnsafeBytes { kb in try value.withUnsafeBytes { vb in try put(db, key: kb, value: vb, overwrite: overwrite) } }
    }

    /// `put` for a key kept inline and a value the caller owns the memory of.
    @discardableResult
    public func put(_ db: LMDBDatabase, _ key: InlineBytes, bytes value: UnsafeRawBufferPointer, overwrite: Bool = true) throws -> Bool {
        try key.withUnsafeBytes { kb in try put(db, key: kb, value: value, overwrite: overwrite) }
    }

    /// `put` for a key and a value kept inline.
    @discardableResult
    public func put(_ db: LMDBDatabase, _ key: InlineBytes, _ value: InlineBytes, overwrite: Bool = true) throws -> Bool {
        try key.withUnsafeBytes { kb in try value.withUnsafeBytes { vb in try put(db, key: kb, value: vb, overwrite: overwrite) } }
    }

    /// Stores `value` under `key` unless the key exists; then nothing is written and
    /// `existing` reads the stored value. One descent of the tree for "look up, else insert".
    public func insert<T>(
        _ db: LMDBDatabase, _ key: InlineBytes, _ value: InlineBytes, existing: (UnsafeRawBufferPointer) throws -> T
    ) throws -> T? {
        var found: T?
        try key.withUnsafeBytes { kb in
            try value.withUnsafeBytes { vb in _ = try put(db, key: kb, value: vb, overwrite: false) { found = try existing($0) } }
        }
        return found
    }

    /// `mdb_put`; without `overwrite` an existing key is left alone, `existing` reads its
    /// stored value (LMDB points `v` at it) and the call returns false.
    private func put(
        _ db: LMDBDatabase, key kb: UnsafeRawBufferPointer, value vb: UnsafeRawBufferPointer, overwrite: Bool,
        existing: (UnsafeRawBufferPointer) throws -> Void = { _ in }
    ) throws -> Bool {
        precondition(!isReadOnly, "put in a read-only transaction")
        let flags: UInt32 = overwrite ? 0 : UInt32(MDB_NOOVERWRITE)
        var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
        var v = MDB_val(mv_size: vb.count, mv_data: UnsafeMutableRawPointer(mutating: vb.baseAddress))
        let rc = mdb_put(handle, db.dbi, &k, &v, flags)
        if rc == MDB_KEYEXIST && !overwrite {
            try existing(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            return false
        }
        try checkWrite(rc, "mdb_put(\(db.name))")
        mutationCount += 1
        return true
    }

    /// Removes `key`; returns false if it did not exist.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { try delete(db, key: $0) }
    }

    /// `delete` for a key kept inline.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: InlineBytes) throws -> Bool {
        try key.withUnsafeBytes { try delete(db, key: $0) }
    }

    private func delete(_ db: LMDBDatabase, key kb: UnsafeRawBufferPointer) throws -> Bool {
        precondition(!isReadOnly, "delete in a read-only transaction")
        var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
        let rc = mdb_del(handle, db.dbi, &k, nil)
        if rc == MDB_NOTFOUND { return false }
        try checkWrite(rc, "mdb_del(\(db.name))")
        mutationCount += 1
        return true
    }

    /// Removes every entry of `db` (the database itself stays).
    public func clear(_ db: LMDBDatabase) throws {
        precondition(!isReadOnly, "clear in a read-only transaction")
        try checkWrite(mdb_drop(handle, db.dbi, 0), "mdb_drop(\(db.name))")
        mutationCount += 1
    }

    private func checkWrite(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
        guard rc != MDB_SUCCESS else { return }
        let error = LMDBError(code: rc, operation: operation())
        // Argument errors (key too long, bad flags) leave the transaction usable; anything
        // else (map full, txn full, I/O) marks it failed inside LMDB.
        if rc != MDB_BAD_VALSIZE && rc != EINVAL && poison == nil { poison = error }
        throw error
    }

    // MARK: read, then write back

    /// A reader of this write transaction whose cursor also writes back (`replace`): a value
    /// read through it is stored again without a second search of the tree. LMDB frees the
    /// cursor when the transaction ends; the reader must not be used after that.
    public func updateCursor(_ db: LMDBDatabase) throws -> LMDBSequentialReader {
        precondition(!isReadOnly, "an update cursor in a read-only transaction")
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open(\(db.name))")
        return LMDBSequentialReader(cursor: cursor!, db: db)
    }

    /// Stores `value` under `key`: in place when `cursor` (from `updateCursor`) still sits on
    /// `key` after reading it, otherwise by an ordinary put.
    public func replace(_ cursor: LMDBSequentialReader, _ key: InlineBytes, _ value: UnsafeRawBufferPointer) throws {
        try key.withUnsafeBytes { kb in
            var k = MDB_val()
            var v = MDB_val()
            let onKey = mdb_cursor_get(cursor.cursor, &k, &v, MDB_GET_CURRENT) == MDB_SUCCESS && sameKey(k, kb)
            guard onKey else {
                _ = try put(cursor.db, key: kb, value: value, overwrite: true)
                return
            }
            k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
            try checkWrite(mdb_cursor_put(cursor.cursor, &k, &v, UInt32(MDB_CURRENT)), "mdb_cursor_put(\(cursor.db.name))")
            mutationCount += 1
        }
    }

    // MARK: cursors

    /// Visits entries with `lower <= key < upper` in key order (or reverse order), until
    /// `body` returns false. A nil bound is open. Keys compare as LMDB does: bytewise, a
    /// shorter key before its extensions.
    public func scan(
        _ db: LMDBDatabase,
        from lower: [UInt8]? = nil,
        to upper: [UInt8]? = nil,
        reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()

        func position(_ bound: [UInt8]?, fallback: MDB_cursor_op) -> Int32 {
            guard let bound else { return mdb_cursor_get(cursor, &k, &v, fallback) }
            return bound.withUnsafeBytes { bb -> Int32 in
                k = MDB_val(mv_size: bb.count, mv_data: UnsafeMutableRawPointer(mutating: bb.baseAddress))
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
        }

        var rc: Int32
        if reverse {
            if upper == nil {
                rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
            } else {
                rc = position(upper, fallback: MDB_LAST)
                if rc == MDB_NOTFOUND {
                    rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
                } else if rc == MDB_SUCCESS {
                    rc = mdb_cursor_get(cursor, &k, &v, MDB_PREV)
                }
            }
        } else {
            rc = position(lower, fallback: MDB_FIRST)
        }

        while rc == MDB_SUCCESS {
            let key = UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size)
            if reverse {
                if let lower, compareKeys(key, lower) < 0 { return }
            } else {
                if let upper, compareKeys(key, upper) >= 0 { return }
            }
            let value = UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
            if try !body(key, value) { return }
            rc = mdb_cursor_get(cursor, &k, &v, reverse ? MDB_PREV : MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get(\(db.name))") }
    }
}

/// Point reads through one cursor: a key that is the one after the previous read's (a
/// drained mailbox names history records one after the other, acknowledgements come sorted)
/// is one step of the cursor instead of a search from the root; any other key is searched.
/// From `updateCursor`, the cursor also writes back (`LMDBTransaction.replace`).
public struct LMDBSequentialReader {
    let cursor: OpaquePointer
    let db: LMDBDatabase
    /// Whether the cursor sits on the previous read's key.
    private var positioned = false

    init(cursor: OpaquePointer, db: LMDBDatabase) {
        self.cursor = cursor
        self.db = db
    }

    /// Calls `body` with the value stored under `key`, or returns nil if there is none.
    public mutating func withValue<R>(_ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try key.withUnsafeBytes { try withValue(key: $0, body) }
    }

    /// `withValue` for a key built inline.
    public mutating func withValue<R>(_ key: InlineBytes, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try key.withUnsafeBytes { try withValue(key: $0, body) }
    }

    private mutating func withValue<R>(key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        var k = MDB_val()
        var v = MDB_val()
        if positioned {
            let rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
            if rc == MDB_SUCCESS, sameKey(k, key) {
                return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            }
            if rc != MDB_SUCCESS && rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get(\(db.name))") }
        }
        k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_KEY)
        positioned = rc == MDB_SUCCESS
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_cursor_get(\(db.name))")
        return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
}

/// Whether the key LMDB returned in `k` is `key`.
func sameKey(_ k: MDB_val, _ key: UnsafeRawBufferPointer) -> Bool {
    k.mv_size == key.count && (key.isEmpty || memcmp(k.mv_data, key.baseAddress!, key.count) == 0)
}

/// LMDB's default key order: memcmp over the common length, then shorter first.
public func compareKeys(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Int {
    b.withUnsafeBytes { bb in
        let n = min(a.count, bb.count)
        if n > 0, let pa = a.baseAddress, let pb = bb.baseAddress {
            let c = memcmp(pa, pb, n)
            if c != 0 { return c < 0 ? -1 : 1 }
        }
        return a.count == bb.count ? 0 : (a.count < bb.count ? -1 : 1)
    }
}

/// The smallest key greater than every key that starts with `prefix` (nil if none exists,
/// i.e. the prefix is all 0xFF). Use as the exclusive upper bound of a prefix scan.
public func prefixUpperBound(_ prefix: [UInt8]) -> [UInt8]? {
    var bound = prefix
    while let last = bound.last {
        if last < 0xFF {
            bound[bound.count - 1] = last + 1
            return bound
        }
        bound.removeLast()
    }
    return nil
}
