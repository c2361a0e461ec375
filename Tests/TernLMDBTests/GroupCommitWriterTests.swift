import Foundation
import Testing
import TernTestSupport

@testable import TernLMDB

struct Failure: Error, Equatable {
    let id: Int
}

private func key(_ i: Int) -> [UInt8] {
    var k = [UInt8](repeating: 0, count: 8)
    for b in 0..<8 { k[b] = UInt8(truncatingIfNeeded: UInt64(i) >> UInt64(56 - 8 * b)) }
    return k
}

@Suite("Group commit writer")
struct GroupCommitWriterTests {
    func open(_ dir: TemporaryDirectory, mapSize: Int = 64 << 20) throws -> (LMDBEnvironment, LMDBDatabase) {
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: mapSize))
        let db = try env.openDatabase("t", create: true)
        return (env, db)
    }

    @Test("concurrent writers share commits, and each write is committed when its call returns")
    func batching() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir)
        let log = Locked<[CommitReport]>([])
        let writer = GroupCommitWriter(environment: env, maxBatch: 1024) { report in log.mutate { $0.append(report) } }
        let writes = 400
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<writes {
                group.addTask {
                    _ = try await writer.write { txn in try txn.put(db, key(i), Array("v\(i)".utf8)) }
                    // Resumed only after the commit: a fresh read transaction sees it.
                    let seen = try env.withReadTransaction { try $0.get(db, key(i)) }
                    #expect(seen == Array("v\(i)".utf8))
                }
            }
            try await group.waitForAll()
        }
        await writer.shutdown()
        let reports = log.value
        let committed = reports.filter { $0.error == nil && $0.commitNanoseconds > 0 }
        #expect(reports.map(\.requests).reduce(0, +) == writes)
        #expect(committed.count < writes, "expected batching: \(committed.count) commits for \(writes) writes")
        #expect(reports.contains { $0.requests > 1 })
        env.close()
    }

    @Test("a closure that throws before writing fails alone; the rest of its batch commits")
    func cleanFailure() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir)
        let log = Locked<[CommitReport]>([])
        let writer = GroupCommitWriter(environment: env) { report in log.mutate { $0.append(report) } }
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<100 {
                group.addTask {
                    do {
                        try await writer.write { txn in
                            if i % 10 == 3 { throw Failure(id: i) }
                            try txn.put(db, key(i), [1])
                        }
                        return (i, true)
                    } catch {
                        #expect(error as? Failure == Failure(id: i))
                        return (i, false)
                    }
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for i in 0..<100 { #expect(results[i] == (i % 10 != 3)) }
        try env.withReadTransaction { txn throws in
            for i in 0..<100 { #expect(try txn.contains(db, key(i)) == (i % 10 != 3)) }
        }
        #expect(log.value.allSatisfy { $0.replays == 0 })
        await writer.shutdown()
        env.close()
    }

    @Test("a closure that throws after writing leaves nothing behind; its batch is rebuilt without it")
    func failureAfterWrite() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir)
        let log = Locked<[CommitReport]>([])
        let writer = GroupCommitWriter(environment: env) { report in log.mutate { $0.append(report) } }
        // Hold the writer busy so the next requests queue into one batch.
        let hold = WriterHold()
        let blocker = Task {
            try await writer.write { txn in
                hold.hold()
                try txn.put(db, key(1000), [0])
            }
        }
        await hold.held()
        let tasks = (0..<20).map { i in
            Task { () -> Bool in
                do {
                    try await writer.write { txn in
                        try txn.put(db, key(i), [UInt8(i)])
                        if i == 7 { throw Failure(id: i) }
                    }
                    return true
                } catch {
                    return false
                }
            }
        }
        while writer.pendingCount < 20 { try await Task.sleep(for: .milliseconds(5)) }
        hold.release()
        try await blocker.value
        var outcomes: [Bool] = []
        for task in tasks { outcomes.append(await task.value) }
        #expect(outcomes.enumerated().allSatisfy { $0.element == ($0.offset != 7) })
        try env.withReadTransaction { txn throws in
            #expect(try txn.get(db, key(7)) == nil)
            for i in 0..<20 where i != 7 { #expect(try txn.get(db, key(i)) == [UInt8(i)]) }
        }
        #expect(log.value.contains { $0.replays == 1 && $0.requests == 20 })
        await writer.shutdown()
        env.close()
    }

    @Test("a full map is a typed error, nothing of the failed write is stored, and reads keep working")
    func mapFull() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir, mapSize: 1 << 20)
        let writer = GroupCommitWriter(environment: env)
        _ = try await writer.write { txn in try txn.put(db, Array("keep".utf8), Array("me".utf8)) }
        var failure: LMDBError?
        var stored = 0
        for i in 0..<10_000 {
            do {
                _ = try await writer.write { txn in try txn.put(db, key(i), [UInt8](repeating: 7, count: 4000)) }
                stored += 1
            } catch let error as LMDBError {
                failure = error
                break
            }
        }
        #expect(failure?.isMapFull == true)
        #expect(stored > 10)
        try env.withReadTransaction { txn throws in
            #expect(try txn.get(db, Array("keep".utf8)) == Array("me".utf8))
            #expect(try txn.count(db) == stored + 1)
        }
        // Deleting frees room for more.
        let written = stored
        try await writer.write { txn in
            for i in 0..<written { try txn.delete(db, key(i)) }
        }
        _ = try await writer.write { txn in try txn.put(db, key(1), [UInt8](repeating: 1, count: 4000)) }
        await writer.shutdown()
        env.close()
    }

    @Test("shutdown commits what was queued and refuses later writes")
    func shutdown() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir)
        let writer = GroupCommitWriter(environment: env)
        let pending = (0..<50).map { i in Task { try await writer.write { txn in try txn.put(db, key(i), [1]) } } }
        for task in pending { _ = try await task.value }
        await writer.shutdown()
        await #expect(throws: WriterStoppedError.self) {
            try await writer.write { txn in try txn.put(db, key(99), [1]) }
        }
        #expect(try env.withReadTransaction { try $0.count(db) } == 50)
        env.close()
    }

    // MARK: caller commits

    @Test("deferred writes wait for their caller, which commits them all in one batch on its own thread")
    func callerCommits() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir)
        let log = Locked<[CommitReport]>([])
        let writer = GroupCommitWriter(environment: env, callerCommits: true) { report in log.mutate { $0.append(report) } }
        let hookThreads = Locked<[UInt]>([])
        writer.addBatchHook { hookThreads.mutate { $0.append(UInt(bitPattern: Int(bitPattern: pthread_self()))) } }
        let outcomes = await Task.detached { () -> (asked: [Bool], seenBefore: [UInt8]?, ran: [(thread: UInt, writer: Bool, ok: Bool)], me: UInt) in
            let me = UInt(bitPattern: Int(bitPattern: pthread_self()))
            let ran = Locked<[(thread: UInt, writer: Bool, ok: Bool)]>([])
            var asked: [Bool] = []
            for i in 0..<5 {
                asked.append(writer.submitDeferred({ txn in try txn.put(db, key(i), [UInt8(i)]) }) { result in
                    let ok = (try? result.get()) != nil
                    ran.mutate { $0.append((UInt(bitPattern: Int(bitPattern: pthread_self())), writer.isWriterThread, ok)) }
                })
            }
            // Nothing is committed (or woken) until the caller commits.
            usleep(50_000)
            let seenBefore = try? env.withReadTransaction { try $0.get(db, key(0)) }
            #expect(ran.value.isEmpty)
            #expect(!writer.isWriterThread)
            writer.commitDeferred()
            return (asked, seenBefore, ran.value, me)
        }.value
        #expect(outcomes.asked == [true, false, false, false, false], "one commitDeferred call for the whole queue")
        #expect(outcomes.seenBefore == nil)
        #expect(outcomes.ran.count == 5)
        #expect(outcomes.ran.allSatisfy { $0.thread == outcomes.me && $0.writer && $0.ok }, "completions on the caller, as the committer")
        #expect(hookThreads.value == [outcomes.me])
        for i in 0..<5 { #expect(try env.withReadTransaction { try $0.get(db, key(i)) } == [UInt8(i)]) }
        #expect(log.value.map(\.requests) == [5])
        // Committing again with nothing queued does nothing.
        writer.commitDeferred()
        #expect(log.value.count == 1)
        await writer.shutdown()
        env.close()
    }

    @Test("a deferred commit while a batch runs is left to that batch's thread; a write queued during a caller's batch commits after it")
    func callerCommitsWhileBusy() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir)
        let writer = GroupCommitWriter(environment: env, callerCommits: true)
        // The writer thread is inside a batch (an ordinary write) when the caller commits.
        let hold = WriterHold()
        let running = Locked(0)
        let overlaps = Locked(0)
        let first = Task {
            try await writer.write { txn in
                running.mutate { $0 += 1 }
                hold.hold()
                try txn.put(db, key(1), [1])
                running.mutate { $0 -= 1 }
            }
        }
        await hold.held()
        let done = Locked<(thread: UInt, ok: Bool)?>(nil)
        let me = await Task.detached { () -> UInt in
            let asked = writer.submitDeferred({ (txn: LMDBTransaction) -> Void in
                if running.value != 0 { overlaps.mutate { $0 += 1 } }
                try txn.put(db, key(2), [2])
            }) { result in done.mutate { $0 = (UInt(bitPattern: Int(bitPattern: pthread_self())), (try? result.get()) != nil) } }
            #expect(asked)
            writer.commitDeferred()  // a batch is running: returns without committing
            return UInt(bitPattern: Int(bitPattern: pthread_self()))
        }.value
        #expect(done.value == nil)
        hold.release()
        try await first.value
        // The writer thread takes the deferred request after its batch.
        for _ in 0..<500 where done.value == nil { try await Task.sleep(for: .milliseconds(10)) }
        let finished = try #require(done.value)
        #expect(finished.ok)
        #expect(finished.thread != me)
        #expect(overlaps.value == 0)
        #expect(try env.withReadTransaction { try $0.get(db, key(2)) } == [2])

        // The other way round: while a caller's batch runs, the writer thread waits for it.
        let callerHold = WriterHold()
        let callerBatch = Task.detached {
            _ = writer.submitDeferred({ (txn: LMDBTransaction) -> Void in
                running.mutate { $0 += 1 }
                callerHold.hold()
                try txn.put(db, key(3), [3])
                running.mutate { $0 -= 1 }
            }) { _ in }
            writer.commitDeferred()
        }
        await callerHold.held()
        let second = Task {
            try await writer.write { txn in
                if running.value != 0 { overlaps.mutate { $0 += 1 } }
                try txn.put(db, key(4), [4])
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        callerHold.release()
        await callerBatch.value
        try await second.value
        #expect(overlaps.value == 0, "a write ran while another batch was open")
        #expect(try env.withReadTransaction { try $0.get(db, key(3)) } == [3])
        #expect(try env.withReadTransaction { try $0.get(db, key(4)) } == [4])
        await writer.shutdown()
        env.close()
    }

    @Test("without caller commits a deferred write goes to the writer thread; at shutdown queued deferred writes are committed")
    func deferredFallbacks() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (env, db) = try open(dir)
        let plain = GroupCommitWriter(environment: env)
        let committed = Locked(false)
        let asked = plain.submitDeferred({ txn in try txn.put(db, key(1), [1]) }) { result in
            committed.mutate { $0 = (try? result.get()) != nil }
        }
        #expect(!asked)
        await plain.shutdown()
        #expect(committed.value)

        let deferring = GroupCommitWriter(environment: env, callerCommits: true)
        let stored = Locked(false)
        let mustCommit = deferring.submitDeferred({ txn in try txn.put(db, key(2), [2]) }) { result in
            stored.mutate { $0 = (try? result.get()) != nil }
        }
        #expect(mustCommit)
        // Its caller never commits: shutdown still does.
        await deferring.shutdown()
        #expect(stored.value)
        #expect(try env.withReadTransaction { try $0.get(db, key(2)) } == [2])
        env.close()
    }
}
