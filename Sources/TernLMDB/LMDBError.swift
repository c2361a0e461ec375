import CLMDB

/// A failed LMDB call, carrying LMDB's (or the system's) return code.
///
/// Callers above the store turn these into client-facing errors: `isMapFull` becomes
/// "storage full" (HTTP 507), anything raised by a commit becomes "not stored" (HTTP 503).
public struct LMDBError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The raw return code: an `MDB_*` error (negative) or an `errno` value (positive).
    public let code: Int32
    /// The LMDB function that failed, for logs.
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The map (database file) reached its configured maximum size.
    public var isMapFull: Bool { code == MDB_MAP_FULL }
    /// Every reader slot is in use.
    public var isReadersFull: Bool { code == MDB_READERS_FULL }
    /// The write transaction grew past LMDB's dirty-page limit.
    public var isTransactionFull: Bool { code == MDB_TXN_FULL }
    /// A system error such as `EIO` or `ENOSPC` (positive codes are `errno` values).
    public var isSystemError: Bool { code > 0 }

    /// `mdb_strerror`'s text for the code.
    public var message: String { String(cString: mdb_strerror(code)) }

    public var description: String { "\(operation): \(message) (\(code))" }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != MDB_SUCCESS { throw LMDBError(code: rc, operation: operation()) }
}
