import TernCore
import TernLMDB

/// A read-only view of the store inside one short LMDB read transaction.
///
/// Valid only inside the closure given to `Store.read`; not Sendable, so it cannot cross an
/// `await`. The typed accessors (in `ReadTx+*.swift`) are the only way domain code reads.
public class ReadTx {
    let raw: LMDBTransaction
    public let tables: Tables

    init(raw: LMDBTransaction, tables: Tables) {
        self.raw = raw
        self.tables = tables
    }

    /// Decodes the record stored under `key`, or nil.
    public func record<R: StoreRecord>(_ type: R.Type, in db: LMDBDatabase, at key: [UInt8]) throws -> R? {
        try raw.withValue(db, key) { buffer in try R.decode(buffer) }
    }

    /// Whether `key` exists in `db`.
    public func contains(_ db: LMDBDatabase, _ key: [UInt8]) throws -> Bool {
        try raw.contains(db, key)
    }

    /// The raw value under `key` (copied).
    public func bytes(_ db: LMDBDatabase, _ key: [UInt8]) throws -> [UInt8]? {
        try raw.get(db, key)
    }

    /// `record` for a key built inline.
    public func record<R: StoreRecord>(_ type: R.Type, in db: LMDBDatabase, at key: InlineBytes) throws -> R? {
        try raw.withValue(db, key) { buffer in try R.decode(buffer) }
    }

    /// Entries in `db`.
    public func count(_ db: LMDBDatabase) throws -> Int {
        try raw.count(db)
    }

    /// Visits keys starting with `prefix` in order (or reverse order) until `body` returns
    /// false. Buffers are valid only during the call.
    public func scan(
        _ db: LMDBDatabase,
        prefix: [UInt8],
        reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try raw.scan(db, from: prefix, to: prefixUpperBound(prefix), reverse: reverse, body)
    }

    /// Visits keys in `[lower, upper)`.
    public func scan(
        _ db: LMDBDatabase,
        from lower: [UInt8]?,
        to upper: [UInt8]?,
        reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try raw.scan(db, from: lower, to: upper, reverse: reverse, body)
    }

    /// A big-endian u64 stored under `key` in `meta`, or nil.
    public func metaU64(_ key: [UInt8]) throws -> UInt64? {
        try raw.withValue(tables.meta, key) { buffer throws(StoreError) in
            var reader = ByteReader(buffer, what: "meta")
            return try reader.u64()
        }
    }
}

/// A read-write view inside the current group-committed write transaction.
///
/// Write closures should check first and write last: a closure that throws after writing
/// forces its batch to be rebuilt (correct, but it costs the other writers a replay).
public final class WriteTx: ReadTx {
    /// What the writer remembers across requests (see `WriterCache`); every write below
    /// tells it which table changed.
    let cache: WriterCache
    /// The messages table's update cursor (`messageBytes` reads through it, the counter
    /// patch writes back through it); LMDB frees it with the transaction.
    var messageCursor: LMDBSequentialReader?

    init(raw: LMDBTransaction, tables: Tables, cache: WriterCache) {
        self.cache = cache
        super.init(raw: raw, tables: tables)
    }

    /// Changes made so far in this transaction (by every request sharing it): a request
    /// that runs several independent steps can tell whether a failed step wrote anything.
    public var mutationCount: Int { raw.mutationCount }

    /// True when LMDB refused an operation in a way that spoils the whole transaction.
    public var isBroken: Bool { raw.poison != nil }

    /// Stores `record` under `key`.
    public func put<R: StoreRecord>(_ record: R, in db: LMDBDatabase, at key: [UInt8]) throws {
        cache.wrote(db)
        try raw.put(db, key, record.encoded())
    }

    /// Stores raw bytes under `key`. With `overwrite: false` returns false if it existed.
    @discardableResult
    public func putBytes(_ value: [UInt8], in db: LMDBDatabase, at key: [UInt8], overwrite: Bool = true) throws -> Bool {
        cache.wrote(db)
        return try raw.put(db, key, value, overwrite: overwrite)
    }

    /// Stores a value the caller also puts into the writer's cache itself (a mailbox head):
    /// the one write that does not drop cached entries of its table.
    func putCached(_ value: InlineBytes, in db: LMDBDatabase, at key: InlineBytes) throws {
        try raw.put(db, key, value)
    }

    /// `put` for a key built inline; the record is encoded into the writer's scratch buffer.
    public func put<R: StoreRecord>(_ record: R, in db: LMDBDatabase, at key: InlineBytes) throws {
        cache.wrote(db)
        try putEncoded(record, in: db, at: key)
    }

    /// `record.encoded()` in the writer's scratch buffer: valid (unshared, no copy) until
    /// the next record is encoded there — for one value put under several keys (a message's
    /// mailbox entry for every device).
    public func encodedInScratch<R: StoreRecord>(_ record: R) -> [UInt8] {
        cache.scratch.removeAll()
        cache.scratch.u8(R.layoutVersion)
        record.encode(into: &cache.scratch)
        return cache.scratch.bytes
    }

    /// Encodes `record` into the writer's scratch buffer and stores it, without telling the
    /// cache (heads: see `putCached`).
    func putEncoded<R: StoreRecord>(_ record: R, in db: LMDBDatabase, at key: InlineBytes) throws {
        cache.scratch.removeAll()
        cache.scratch.u8(R.layoutVersion)
        record.encode(into: &cache.scratch)
        try cache.scratch.bytes.withUnsafeBytes { try raw.put(db, key, bytes: $0) }
    }

    /// `putBytes` for a key built inline.
    @discardableResult
    public func putBytes(_ value: [UInt8], in db: LMDBDatabase, at key: InlineBytes, overwrite: Bool = true) throws -> Bool {
        cache.wrote(db)
        return try raw.put(db, key, value, overwrite: overwrite)
    }

    /// `putBytes` for a key and a value built inline.
    @discardableResult
    public func putBytes(_ value: InlineBytes, in db: LMDBDatabase, at key: InlineBytes, overwrite: Bool = true) throws -> Bool {
        cache.wrote(db)
        return try raw.put(db, key, value, overwrite: overwrite)
    }

    /// `delete` for a key built inline.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: InlineBytes) throws -> Bool {
        cache.wrote(db)
        return try raw.delete(db, key)
    }

    /// Removes `key`; false if it was absent.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: [UInt8]) throws -> Bool {
        cache.wrote(db)
        return try raw.delete(db, key)
    }

    /// Removes keys starting with `prefix`, at most `limit` of them (the first in key
    /// order); returns how many.
    @discardableResult
    public func deletePrefix(_ db: LMDBDatabase, _ prefix: [UInt8], limit: Int = .max) throws -> Int {
        var keys: [[UInt8]] = []
        try scan(db, prefix: prefix) { key, _ in
            keys.append(Array(key))
            return keys.count < limit
        }
        cache.wrote(db)
        for key in keys { try raw.delete(db, key) }
        return keys.count
    }

    /// Stores a big-endian u64 under `key` in `meta`.
    public func setMetaU64(_ key: [UInt8], _ value: UInt64) throws {
        try raw.put(tables.meta, key, Keys.u64(value))
    }

    /// Increments the u64 counter `key` in `meta` and returns the new value (first call: 1).
    public func nextSequence(_ key: [UInt8]) throws -> UInt64 {
        let next = (try metaU64(key) ?? 0) + 1
        try setMetaU64(key, next)
        return next
    }
}
