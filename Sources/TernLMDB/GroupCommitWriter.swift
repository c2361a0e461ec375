import CLMDB
import Foundation
import Synchronization

/// What one group commit did, reported to an observer for metrics and logs.
public struct CommitReport: Sendable {
    /// Write requests that shared the transaction (including ones that failed).
    public var requests: Int
    /// Times the batch was rebuilt because a request failed after writing.
    public var replays: Int
    /// Wall time of the commit call alone (the fdatasync with `.sync`).
    public var commitNanoseconds: UInt64
    /// Wall time from starting the transaction to the end of the commit.
    public var totalNanoseconds: UInt64
    /// The commit's error, if the batch was not stored.
    public var error: LMDBError?
    /// Committed by a `commitDeferred` caller rather than the writer thread.
    public var byCaller: Bool = false
}

/// Raised for writes submitted after `shutdown()`.
public struct WriterStoppedError: Error, Sendable, CustomStringConvertible {
    public var description: String { "the store writer has shut down" }
}

/// The single writer: one dedicated thread that runs every write closure and commits them
/// in batches ("group commit").
///
/// Callers `await write { txn in … }`. Closures queued while a commit is in flight share
/// the next transaction and its one fsync; each caller resumes only after the commit that
/// holds its changes returned success (with `.sync` durability, after the data is on disk).
///
/// Isolation between callers without nested transactions: a closure that throws *before*
/// writing simply fails on its own. A closure that throws after writing, or that hits an
/// error which breaks LMDB's transaction (map full, I/O), gets its error and the batch is
/// rebuilt from scratch without it — closures must therefore be re-runnable (pure functions
/// of the store state plus their captured inputs). Write closures should validate first and
/// write last, which keeps replays rare.
///
/// **Caller commits** (`callerCommits`, for unsynced stores): a network event loop can queue
/// a write with `submitDeferred` and then commit the queue itself with `commitDeferred` at
/// the end of its pass, when no other commit is running, instead of waking the writer thread
/// and being woken back for the completion. With no fsync to wait for, a commit is a few
/// page copies; handing it to another thread and back cost more than the commit. One batch
/// runs at a time either way, and everything else about a batch is the same.
public final class GroupCommitWriter: @unchecked Sendable {
    private let environment: LMDBEnvironment
    private let maxBatch: Int
    private let observer: (@Sendable (CommitReport) -> Void)?
    /// Whether `submitDeferred` leaves the commit to its caller.
    public let callerCommits: Bool
    private let condition = NSCondition()
    private var queue: [WriteRequest] = []
    /// A batch is running (on the writer thread or in `commitDeferred`); under `condition`.
    private var committing = false
    /// A deferred request is queued and its caller was told to call `commitDeferred`; under
    /// `condition`, cleared whenever a batch is taken.
    private var deferredCommitAsked = false
    /// The thread running a batch (its completions and hooks included), 0 when none.
    private let committer = Atomic<UInt>(0)
    private var stopping = false
    private var stopped = false
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []
    private var thread: Thread?
    private var batchHooks: [@Sendable () -> Void] = []
    private var abortHooks: [@Sendable () -> Void] = []

    /// Starts the writer thread. `maxBatch` caps the requests that share one transaction;
    /// `callerCommits` lets `submitDeferred` callers commit on their own thread.
    public init(
        environment: LMDBEnvironment,
        maxBatch: Int = 1024,
        callerCommits: Bool = false,
        observer: (@Sendable (CommitReport) -> Void)? = nil
    ) {
        precondition(!environment.configuration.readOnly, "a read-only environment has no writer")
        self.environment = environment
        self.maxBatch = max(1, maxBatch)
        self.callerCommits = callerCommits
        self.observer = observer
        let started = DispatchSemaphore(value: 0)
        let thread = Thread {
            // The kernel's thread name, shown by top -H and perf (pthread_setname_np is not
            // visible from Swift's Glibc module).
            try? "tern-writer".write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
            started.signal()
            self.run()
        }
        thread.stackSize = 4 << 20
        self.thread = thread
        thread.start()
        started.wait()
    }

    /// Adds `hook`, called on the committing thread after the completions of every batch (also
    /// failed ones) ran: completions can collect work and hand it on once per batch.
    public func addBatchHook(_ hook: @escaping @Sendable () -> Void) {
        condition.lock()
        batchHooks.append(hook)
        condition.unlock()
    }

    /// Adds `hook`, called on the committing thread whenever a transaction holding writes is
    /// thrown away (a replay without a failed request, a failed commit): state the writer
    /// keeps across transactions can drop what described those writes.
    public func addAbortHook(_ hook: @escaping @Sendable () -> Void) {
        condition.lock()
        abortHooks.append(hook)
        condition.unlock()
    }

    /// True on the thread running a batch, while it runs the batch, its completions and its
    /// hooks: the writer thread, or a `commitDeferred` caller.
    public var isWriterThread: Bool { committer.load(ordering: .relaxed) == Self.currentThread }

    private static var currentThread: UInt { UInt(bitPattern: Int(bitPattern: pthread_self())) }

    /// Runs `body` in the next group-committed write transaction and returns its result
    /// once the transaction is committed.
    @inlinable
    public func write<T: Sendable>(_ body: @escaping @Sendable (LMDBTransaction) throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { continuation in
            enqueue(TypedWriteRequest(body: body, continuation: continuation))
        }
    }

    /// Runs `body` in the next group-committed write transaction and then calls
    /// `completion` **on the writer thread** with its result, once the commit holding it
    /// returned. For callers that must not create a task per write (network event loops);
    /// `completion` must be quick (hand work to another thread).
    @inlinable
    public func submit<T: Sendable>(
        _ body: @escaping @Sendable (LMDBTransaction) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        enqueue(CallbackWriteRequest(body: body, completion: completion))
    }

    /// `submit`, leaving the commit to the caller when the writer allows it
    /// (`callerCommits`): returns true when the caller must call `commitDeferred()` soon on
    /// its own thread (once, however many requests returned true before that call), false
    /// when nothing more is needed (the writer thread was woken, or an earlier caller's
    /// `commitDeferred` will take this request too). `completion` runs on the thread that
    /// commits, as with `submit`.
    @inlinable
    public func submitDeferred<T: Sendable>(
        _ body: @escaping @Sendable (LMDBTransaction) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) -> Bool {
        enqueue(CallbackWriteRequest(body: body, completion: completion), deferred: callerCommits)
    }

    /// Queues `request` and wakes the writer thread (unless `deferred`: see
    /// `submitDeferred`), or fails it if the writer stopped. Returns whether the caller must
    /// call `commitDeferred`.
    @usableFromInline
    @discardableResult
    func enqueue(_ request: WriteRequest, deferred: Bool = false) -> Bool {
        condition.lock()
        if stopping {
            condition.unlock()
            request.fail(WriterStoppedError())
            request.deliver()
            return false
        }
        queue.append(request)
        if !deferred {
            condition.signal()
            condition.unlock()
            return false
        }
        let ask = !deferredCommitAsked
        deferredCommitAsked = true
        condition.unlock()
        return ask
    }

    /// Commits the queued requests on the calling thread, when no batch is running;
    /// otherwise leaves them to the thread running it (which takes the queue when done).
    /// Completions and batch hooks run here, with `isWriterThread` true.
    public func commitDeferred() {
        condition.lock()
        guard !queue.isEmpty else {
            condition.unlock()
            return
        }
        guard !committing && !stopping else {
            // The running batch's thread looks at the queue when it ends; the writer thread
            // drains it at shutdown.
            condition.signal()
            condition.unlock()
            return
        }
        let (batch, hooks, aborted) = takeBatch()
        condition.unlock()
        runBatch(batch, hooks: hooks, aborted: aborted, byCaller: true)
        condition.lock()
        committing = false
        // Requests queued meanwhile (other threads' writes): the writer thread takes them.
        if !queue.isEmpty || stopping { condition.signal() }
        condition.unlock()
    }

    /// Takes the next batch and marks it running; under `condition`.
    private func takeBatch() -> (batch: [WriteRequest], hooks: [@Sendable () -> Void], aborted: [@Sendable () -> Void]) {
        committing = true
        deferredCommitAsked = false
        let batch: [WriteRequest]
        if queue.count <= maxBatch {
            batch = queue
            queue = []
            queue.reserveCapacity(batch.count)
        } else {
            batch = Array(queue.prefix(maxBatch))
            queue.removeFirst(maxBatch)
        }
        return (batch, batchHooks, abortHooks)
    }

    /// Commits `batch`, then runs the hooks, as the committer.
    private func runBatch(_ batch: [WriteRequest], hooks: [@Sendable () -> Void], aborted: [@Sendable () -> Void], byCaller: Bool = false) {
        committer.store(Self.currentThread, ordering: .relaxed)
        commit(batch, aborted: aborted, byCaller: byCaller)
        for hook in hooks { hook() }
        committer.store(0, ordering: .relaxed)
    }

    /// Requests already queued.
    public var pendingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count
    }

    /// Stops accepting writes, commits everything already queued, and ends the thread.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if stopped {
                condition.unlock()
                continuation.resume()
                return
            }
            stopping = true
            stopWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }

    // MARK: the writer thread

    private func run() {
        while true {
            condition.lock()
            // A batch committed by a `commitDeferred` caller runs to its end first.
            while committing || (queue.isEmpty && !stopping) { condition.wait() }
            if queue.isEmpty && stopping {
                stopped = true
                let waiters = stopWaiters
                stopWaiters = []
                condition.unlock()
                for waiter in waiters { waiter.resume() }
                return
            }
            let (batch, hooks, aborted) = takeBatch()
            condition.unlock()
            runBatch(batch, hooks: hooks, aborted: aborted)
            condition.lock()
            committing = false
            condition.unlock()
        }
    }

    private func commit(_ batch: [WriteRequest], aborted: [@Sendable () -> Void], byCaller: Bool) {
        let start = DispatchTime.now().uptimeNanoseconds
        var live = batch
        var replays = 0
        rebuild: while true {
            var raw: OpaquePointer?
            let rc = mdb_txn_begin(environment.handle, nil, 0, &raw)
            guard rc == MDB_SUCCESS, let raw else {
                let error = LMDBError(code: rc, operation: "mdb_txn_begin(write)")
                for request in live {
                    request.fail(error)
                    request.deliver()
                }
                report(batch.count, replays, 0, start, error, byCaller)
                return
            }
            let txn = LMDBTransaction(raw, readOnly: false)
            for (index, request) in live.enumerated() {
                let before = txn.mutationCount
                let outcome = request.execute(txn)
                let broken = txn.poison != nil
                if !outcome || broken {
                    if txn.mutationCount == before && !broken {
                        continue  // failed cleanly: nothing of it is in the transaction
                    }
                    // Its partial writes (or a broken LMDB transaction) are in the way:
                    // drop it and run the rest again in a fresh transaction.
                    txn.invalidate()
                    mdb_txn_abort(raw)
                    for hook in aborted { hook() }
                    if let poison = txn.poison, outcome { request.fail(poison) }
                    request.deliver()
                    live.remove(at: index)
                    replays += 1
                    continue rebuild
                }
            }
            txn.invalidate()
            if txn.mutationCount == 0 {
                mdb_txn_abort(raw)
                for request in live { request.deliver() }
                report(batch.count, replays, 0, start, nil, byCaller)
                return
            }
            let commitStart = DispatchTime.now().uptimeNanoseconds
            let crc = mdb_txn_commit(raw)
            let commitNanos = DispatchTime.now().uptimeNanoseconds - commitStart
            if crc == MDB_SUCCESS {
                for request in live { request.deliver() }
                report(batch.count, replays, commitNanos, start, nil, byCaller)
            } else {
                let error = LMDBError(code: crc, operation: "mdb_txn_commit")
                for hook in aborted { hook() }
                for request in live {
                    request.failIfSucceeded(error)
                    request.deliver()
                }
                report(batch.count, replays, commitNanos, start, error, byCaller)
            }
            return
        }
    }

    private func report(_ requests: Int, _ replays: Int, _ commitNanos: UInt64, _ start: UInt64, _ error: LMDBError?, _ byCaller: Bool) {
        guard let observer else { return }
        observer(
            CommitReport(
                requests: requests,
                replays: replays,
                commitNanoseconds: commitNanos,
                totalNanoseconds: DispatchTime.now().uptimeNanoseconds - start,
                error: error,
                byCaller: byCaller
            )
        )
    }
}

/// A queued write, type-erased for the writer thread (a class rather than a protocol so
/// that `write` can be inlined and specialised in its callers).
@usableFromInline
class WriteRequest: @unchecked Sendable {
    @usableFromInline init() {}
    /// Runs the closure; returns false if it threw (the error is kept).
    func execute(_ txn: LMDBTransaction) -> Bool { fatalError("abstract") }
    /// Replaces the outcome with `error`.
    @usableFromInline func fail(_ error: any Error) { fatalError("abstract") }
    /// Replaces a successful outcome with `error` (a failed commit).
    func failIfSucceeded(_ error: any Error) { fatalError("abstract") }
    /// Resumes the caller with the outcome.
    @usableFromInline func deliver() { fatalError("abstract") }
}

/// A write whose closure returns a `T`: runs it and keeps the outcome; subclasses say how the
/// outcome reaches the caller.
@usableFromInline
class OutcomeWriteRequest<T: Sendable>: WriteRequest, @unchecked Sendable {
    let body: @Sendable (LMDBTransaction) throws -> T
    var outcome: Result<T, any Error>?

    @usableFromInline
    init(body: @escaping @Sendable (LMDBTransaction) throws -> T) {
        self.body = body
    }

    override func execute(_ txn: LMDBTransaction) -> Bool {
        do {
            outcome = .success(try body(txn))
            return true
        } catch {
            outcome = .failure(error)
            return false
        }
    }

    @usableFromInline override func fail(_ error: any Error) { outcome = .failure(error) }

    override func failIfSucceeded(_ error: any Error) {
        if case .success = outcome { outcome = .failure(error) }
    }

    /// The outcome to hand over (a request the writer never ran was stopped).
    var result: Result<T, any Error> { outcome ?? .failure(WriterStoppedError()) }
}

/// A write awaited by an async caller.
@usableFromInline
final class TypedWriteRequest<T: Sendable>: OutcomeWriteRequest<T>, @unchecked Sendable {
    let continuation: UnsafeContinuation<T, any Error>

    @usableFromInline
    init(body: @escaping @Sendable (LMDBTransaction) throws -> T, continuation: UnsafeContinuation<T, any Error>) {
        self.continuation = continuation
        super.init(body: body)
    }

    /// Each request is delivered exactly once (the writer drops it from its batch after).
    @usableFromInline override func deliver() { continuation.resume(with: result) }
}

/// A write whose completion runs on the committing thread after the commit.
@usableFromInline
final class CallbackWriteRequest<T: Sendable>: OutcomeWriteRequest<T>, @unchecked Sendable {
    let completion: @Sendable (Result<T, any Error>) -> Void

    @usableFromInline
    init(body: @escaping @Sendable (LMDBTransaction) throws -> T, completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        self.completion = completion
        super.init(body: body)
    }

    @usableFromInline override func deliver() { completion(result) }
}
