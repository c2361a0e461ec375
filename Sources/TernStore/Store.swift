// TernStore owns every persisted byte layout of Tern and the one way to read and write them.
//
// What it promises:
// - One LMDB environment per data folder, opened with a schema check: a folder written by a
//   newer Tern is refused with a clear message, never misread.
// - Writes are committed in batches, one batch at a time (group commit): by the writer
//   thread, or with `nosync` by the event loop that submitted them (`submit(on:)`). A caller of
//   `write` resumes only after the commit holding its changes succeeded; with the default
//   `sync` durability that commit has been fdatasync'ed. A failed commit or a full map is a
//   typed `StoreError` and nothing of that write is visible.
// - Reads run in short read-only transactions on a dedicated thread pool, never on a NIO
//   event loop and never across an `await`.
//
// Concurrency contract: `Store` is Sendable. `ReadTx`/`WriteTx` exist only inside the
// synchronous closures given to `read`/`write`. Write closures run serially on the writer
// thread and must be re-runnable (see `GroupCommitWriter`).
import Dispatch
import Logging
import Metrics
import NIOCore
import NIOPosix
import TernCore
import TernLMDB

/// Settings of the store (the `store.*` configuration keys).
public struct StoreConfiguration: Sendable {
    /// The LMDB directory (`<data>/store`).
    public var path: String
    public var mapSize: Int
    public var maxReaders: UInt32
    public var durability: LMDBDurability
    /// Most write requests that share one commit.
    public var maxBatch: Int
    /// Threads that run read transactions.
    public var readThreads: Int
    /// How often stale reader slots (of killed processes) are cleared.
    public var staleReaderCheckInterval: Duration
    /// With `nosync`: how often buffered commits are flushed to disk.
    public var nosyncFlushInterval: Duration
    /// Open read-only (ops tools beside a running server).
    public var readOnly: Bool
    /// With `nosync`: a write submitted from an event loop is committed by that loop at the
    /// end of its pass instead of by the writer thread (`Store.submit(on:)`). Ignored with
    /// `sync`: an fsync must not stall a network thread.
    public var loopCommits: Bool

    public init(
        path: String,
        mapSize: Int = 8 << 30,
        maxReaders: UInt32 = 126,
        durability: LMDBDurability = .sync,
        maxBatch: Int = 1024,
        readThreads: Int = 4,
        staleReaderCheckInterval: Duration = .seconds(60),
        nosyncFlushInterval: Duration = .seconds(1),
        readOnly: Bool = false,
        loopCommits: Bool = true
    ) {
        self.path = path
        self.mapSize = mapSize
        self.maxReaders = maxReaders
        self.durability = durability
        self.maxBatch = maxBatch
        self.readThreads = readThreads
        self.staleReaderCheckInterval = staleReaderCheckInterval
        self.nosyncFlushInterval = nosyncFlushInterval
        self.readOnly = readOnly
        self.loopCommits = loopCommits
    }
}

/// The durable store: one LMDB environment, one group-commit writer, a read pool.
public final class Store: Sendable {
    public let configuration: StoreConfiguration
    public let environment: LMDBEnvironment
    public let tables: Tables
    private let writer: GroupCommitWriter?
    /// The writer's cache across transactions (used by the thread running a batch only).
    private let writerCache: WriterCache
    private let readers: LMDBReadPool
    private let threadPool: NIOThreadPool
    private let logger: Logger
    private let metrics: StoreMetrics
    private let state = StoreState()

    /// Opens (creating if needed) the store and checks its schema version.
    public init(configuration: StoreConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let environment: LMDBEnvironment
        do {
            environment = try LMDBEnvironment(
                path: configuration.path,
                configuration: LMDBConfiguration(
                    mapSize: configuration.mapSize,
                    maxReaders: configuration.maxReaders,
                    maxDatabases: 64,
                    durability: configuration.durability,
                    readOnly: configuration.readOnly
                )
            )
        } catch let error as LMDBError {
            throw StoreError.unavailable("cannot open the store at \(configuration.path): \(error)")
        }
        self.environment = environment
        do {
            let cleared = try environment.clearStaleReaders()
            if cleared > 0 { logger.notice("cleared stale LMDB reader slots", metadata: ["store.readers_cleared": "\(cleared)"]) }
            self.tables = try Tables(environment: environment)
            try Self.checkSchema(environment, tables, readOnly: configuration.readOnly)
        } catch let error as LMDBError {
            environment.close()
            throw StoreError.unavailable("cannot open the store at \(configuration.path): \(error)")
        } catch {
            environment.close()
            throw error
        }
        let metrics = StoreMetrics()
        self.metrics = metrics
        readers = LMDBReadPool(environment: environment, capacity: configuration.readThreads + 8)
        threadPool = NIOThreadPool(numberOfThreads: max(1, configuration.readThreads))
        threadPool.start()
        let writerCache = WriterCache(tables: tables)
        self.writerCache = writerCache
        if configuration.readOnly {
            writer = nil
        } else {
            let writer = GroupCommitWriter(
                environment: environment, maxBatch: configuration.maxBatch,
                callerCommits: configuration.loopCommits && configuration.durability == .nosync
            ) { report in
                metrics.record(report)
            }
            writer.addAbortHook { writerCache.clear() }
            self.writer = writer
        }
    }

    private static func checkSchema(_ environment: LMDBEnvironment, _ tables: Tables, readOnly: Bool) throws {
        let found: UInt32? = try environment.withReadTransaction { txn in
            try txn.withValue(tables.meta, MetaKey.schemaVersion) { buffer throws(StoreError) in
                var reader = ByteReader(buffer, what: "schema_version")
                return try reader.u32()
            }
        }
        if let found {
            if found > Schema.version { throw StoreError.schemaTooNew(found: found, supported: Schema.version) }
            // Versions below the current one would be migrated here; version 1 is the first.
            return
        }
        if readOnly { throw StoreError.unavailable("\(environment.path) holds no Tern store (no schema version)") }
        try environment.withWriteTransaction { txn in
            var w = ByteWriter()
            w.u32(Schema.version)
            try txn.put(tables.meta, MetaKey.schemaVersion, w.bytes)
        }
    }

    // MARK: reading

    /// Runs `body` in a short read transaction on the store's read thread pool.
    public func read<T: Sendable>(_ body: @escaping @Sendable (ReadTx) throws -> T) async throws -> T {
        do {
            return try await threadPool.runIfActive { [readers, tables] in
                try readers.read { try body(ReadTx(raw: $0, tables: tables)) }
            }
        } catch let error as LMDBError {
            throw StoreError(error)
        }
    }

    /// Runs `body` in a short read transaction on the store's read threads and completes the
    /// future on `eventLoop`.
    public func read<T: Sendable>(on eventLoop: any EventLoop, _ body: @escaping @Sendable (ReadTx) throws -> T) -> EventLoopFuture<T> {
        threadPool.runIfActive(eventLoop: eventLoop) { [readers, tables] in
            do {
                return try readers.read { try body(ReadTx(raw: $0, tables: tables)) }
            } catch let error as LMDBError {
                throw StoreError(error)
            }
        }
    }

    /// Runs `body` in a read transaction on the calling thread. For tools and start-up;
    /// request handlers use `read` so that a page fault never blocks an event loop.
    public func readNow<T>(_ body: (ReadTx) throws -> T) throws -> T {
        do {
            return try readers.read { try body(ReadTx(raw: $0, tables: tables)) }
        } catch let error as LMDBError {
            throw StoreError(error)
        }
    }

    // MARK: writing

    /// Runs `body` in the next group-committed write transaction; returns once the commit
    /// holding its changes succeeded (durable with `sync`).
    public func write<T: Sendable>(_ body: @escaping @Sendable (WriteTx) throws -> T) async throws -> T {
        guard let writer else { throw StoreError.unavailable("the store is open read-only") }
        let tables = self.tables
        let cache = writerCache
        do {
            return try await writer.write { raw in try body(WriteTx(raw: raw, tables: tables, cache: cache)) }
        } catch let error as LMDBError {
            let mapped = StoreError(error)
            if mapped == .mapFull { metrics.mapFull.increment() }
            logger.error("store write failed", metadata: ["store.error": "\(error)"])
            throw mapped
        } catch is WriterStoppedError {
            throw StoreError.closed
        }
    }

    /// Adds `hook`, called on the committing thread after the completions of each commit ran
    /// (see `GroupCommitWriter.addBatchHook`). No-op for a read-only store.
    public func addBatchHook(_ hook: @escaping @Sendable () -> Void) {
        writer?.addBatchHook(hook)
    }

    /// True on the thread running a batch (the writer thread, or an event loop committing its
    /// own writes), while `submit` completions and batch hooks run.
    public var isWriterThread: Bool { writer?.isWriterThread ?? false }

    /// Runs `body` in the next group-committed write and calls `completion` on the thread
    /// that committed it (the store's writer thread unless `loop` commits) after the commit
    /// (or failure). For network event loops: no task per
    /// write. `completion` must only hand work off (e.g. `eventLoop.execute`).
    ///
    /// With `loop` (the caller's own event loop) and loop commits on (`nosync`), the loop
    /// commits the write itself at the end of its current pass, together with every other
    /// write submitted meanwhile, unless a commit is already running; `completion` then runs
    /// on that loop, still with `isWriterThread` true (so hand-offs wait for the batch's end).
    public func submit<T: Sendable>(
        on loop: (any EventLoop)? = nil,
        _ body: @escaping @Sendable (WriteTx) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        guard let writer else {
            completion(.failure(StoreError.unavailable("the store is open read-only")))
            return
        }
        let tables = self.tables
        let metrics = self.metrics
        let cache = writerCache
        let wrapped: @Sendable (LMDBTransaction) throws -> T = { raw in try body(WriteTx(raw: raw, tables: tables, cache: cache)) }
        let mapped: @Sendable (Result<T, any Error>) -> Void = { result in
            switch result {
            case .success: completion(result)
            case .failure(let error as LMDBError):
                let mapped = StoreError(error)
                if mapped == .mapFull { metrics.mapFull.increment() }
                completion(.failure(mapped))
            case .failure(is WriterStoppedError): completion(.failure(StoreError.closed))
            case .failure: completion(result)
            }
        }
        guard let loop, writer.callerCommits else {
            writer.submit(wrapped, completion: mapped)
            return
        }
        if writer.submitDeferred(wrapped, completion: mapped) {
            // Twice through the loop's task queue: the commit runs after the tasks queued in
            // this pass (the acknowledgements of its sessions, written by a task), so that
            // they share it instead of each taking a commit of their own.
            loop.execute { loop.execute { writer.commitDeferred() } }
        }
    }

    /// Proves the writer commits: bumps a counter in a real group-committed write.
    public func probeWrite() async throws {
        _ = try await write { tx in try tx.nextSequence(MetaKey.probe) }
    }

    /// Write requests waiting for the writer.
    public var pendingWrites: Int { writer?.pendingCount ?? 0 }

    // MARK: upkeep

    /// Space and reader usage.
    public func usage() throws -> LMDBUsage {
        do {
            return try environment.usage()
        } catch let error as LMDBError {
            throw StoreError(error)
        }
    }

    /// Clears stale reader slots and updates gauges; with `nosync` also flushes to disk.
    /// Called by `runMaintenance` on a timer, and usable directly by tests.
    public func maintain() {
        do {
            let cleared = try environment.clearStaleReaders()
            if cleared > 0 {
                logger.notice("cleared stale LMDB reader slots", metadata: ["store.readers_cleared": "\(cleared)"])
                metrics.staleReadersCleared.increment(by: cleared)
            }
            let usage = try environment.usage()
            metrics.mapUsedBytes.record(usage.usedBytes)
            metrics.mapSizeBytes.record(usage.mapSize)
            metrics.readersInUse.record(usage.readersInUse)
        } catch {
            logger.warning("store maintenance failed", metadata: ["store.error": "\(error)"])
        }
    }

    /// Runs upkeep until the task is cancelled: stale-reader checks every
    /// `staleReaderCheckInterval`, and with `nosync` a flush every `nosyncFlushInterval`.
    public func runMaintenance() async {
        let flushing = configuration.durability == .nosync && !configuration.readOnly
        let tick = flushing
            ? min(configuration.nosyncFlushInterval, configuration.staleReaderCheckInterval)
            : configuration.staleReaderCheckInterval
        var sinceCheck = Duration.zero
        while !Task.isCancelled {
            do { try await Task.sleep(for: tick) } catch { return }
            if flushing {
                do {
                    try await threadPool.runIfActive { [environment] in try environment.sync() }
                } catch {
                    logger.error("store flush failed", metadata: ["store.error": "\(error)"])
                }
            }
            sinceCheck += tick
            if sinceCheck >= configuration.staleReaderCheckInterval {
                sinceCheck = .zero
                maintain()
            }
        }
    }

    /// Commits queued writes, flushes, and closes the environment. Idempotent.
    public func close() async {
        guard state.beginClose() else { return }
        await writer?.shutdown()
        if !configuration.readOnly { try? environment.sync() }
        readers.close()
        try? await threadPool.shutdownGracefully()
        environment.close()
    }
}

/// Once-only close bookkeeping.
private final class StoreState: @unchecked Sendable {
    private let lock = Mutex()
    private var closing = false

    func beginClose() -> Bool {
        lock.withLock {
            if closing { return false }
            closing = true
            return true
        }
    }
}

/// The store's swift-metrics instruments (names documented in docs/operations.md).
final class StoreMetrics: Sendable {
    let commits = Counter(label: "tern_store_commits_total")
    let loopCommits = Counter(label: "tern_store_loop_commits_total")
    let commitErrors = Counter(label: "tern_store_commit_errors_total")
    let replays = Counter(label: "tern_store_write_replays_total")
    let writes = Counter(label: "tern_store_writes_total")
    let mapFull = Counter(label: "tern_store_map_full_total")
    let staleReadersCleared = Counter(label: "tern_store_stale_readers_cleared_total")
    let batchSize = Recorder(label: "tern_store_commit_batch_size")
    let commitSeconds = Timer(label: "tern_store_commit_duration_seconds")
    let mapUsedBytes = Gauge(label: "tern_store_map_used_bytes")
    let mapSizeBytes = Gauge(label: "tern_store_map_size_bytes")
    let readersInUse = Gauge(label: "tern_store_readers_in_use")

    func record(_ report: CommitReport) {
        writes.increment(by: report.requests)
        batchSize.record(report.requests)
        if report.replays > 0 { replays.increment(by: report.replays) }
        if report.error != nil {
            commitErrors.increment()
        } else if report.commitNanoseconds > 0 {
            commits.increment()
            if report.byCaller { loopCommits.increment() }
            commitSeconds.recordNanoseconds(Int64(report.commitNanoseconds))
        }
    }
}
