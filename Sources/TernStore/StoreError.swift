import TernCore
import TernLMDB

/// What can go wrong below the domain logic. Each case maps to one client-facing error;
/// none of them is ever a 500 with internal detail.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The map reached `store.map_size`: nothing of the failed write was stored.
    case mapFull
    /// A commit or transaction failed (disk error, reader table full): nothing of the
    /// failed write was stored; reads keep working.
    case unavailable(String)
    /// The data folder was written by a newer Tern (schema `found`, this binary `supported`).
    case schemaTooNew(found: UInt32, supported: UInt32)
    /// A stored value could not be decoded.
    case corrupt(String)
    /// The store is shutting down and accepts no more writes.
    case closed

    public var description: String {
        switch self {
        case .mapFull: "the store is full (store.map_size reached)"
        case .unavailable(let detail): "the store could not complete the operation: \(detail)"
        case .schemaTooNew(let found, let supported):
            "the data folder uses store schema version \(found), but this tern binary supports up to version \(supported); upgrade tern or point it at another data folder"
        case .corrupt(let detail): "a stored record is damaged: \(detail)"
        case .closed: "the store is shutting down"
        }
    }

    /// Classifies an LMDB failure.
    public init(_ error: LMDBError) {
        self = error.isMapFull ? .mapFull : .unavailable(error.description)
    }

    /// The error a client sees. Internal detail stays in the logs.
    public var clientError: TernError {
        switch self {
        case .mapFull:
            TernError(.storageFull, "the server's storage is full; the request was not stored")
        case .unavailable, .corrupt, .schemaTooNew:
            TernError(.storeUnavailable, "the server could not store the request; try again later", retryAfter: 5)
        case .closed:
            TernError(.shuttingDown, "the server is shutting down; try again shortly", retryAfter: 5)
        }
    }
}
