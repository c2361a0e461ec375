import Foundation
import Testing
import TernTestSupport

@testable import TernLMDB

@Suite("LMDB environment, transactions, cursors")
struct LMDBEnvironmentTests {
    @Test("data survives close and reopen")
    func reopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20))
            let db = try env.openDatabase("t", create: true)
            _ = try env.withWriteTransaction { try $0.put(db, [1, 2], [3, 4]) }
            env.close()
        }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20))
        let db = try env.openDatabase("t", create: false)
        #expect(try env.withReadTransaction { try $0.get(db, [1, 2]) } == [3, 4])
        env.close()
    }

    @Test("a read-only second handle sees committed data only")
    func readOnlyOpen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20))
        let db = try env.openDatabase("t", create: true)
        _ = try env.withWriteTransaction { try $0.put(db, [1], [1]) }
        env.close()
        let ro = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20, readOnly: true))
        let rdb = try ro.openDatabase("t", create: false)
        #expect(try ro.withReadTransaction { try $0.get(rdb, [1]) } == [1])
        #expect(throws: LMDBError.self) { try ro.openDatabase("missing", create: false) }
        ro.close()
    }

    @Test("the sequential reader returns what point reads return: runs, jumps back and forth, gaps, the end")
    func sequentialReader() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20))
        let db = try env.openDatabase("t", create: true)
        func key(_ n: Int) -> [UInt8] { [UInt8(n >> 8), UInt8(n & 0xFF), 7] }
        // Every third key is missing; a shorter key sorts between neighbours.
        let stored = (0..<600).filter { $0 % 3 != 1 }
        try env.withWriteTransaction { tx in
            for n in stored { _ = try tx.put(db, key(n), [UInt8(n & 0xFF), UInt8(n >> 8)]) }
            _ = try tx.put(db, [0, 5], [42])
        }
        var rng = SystemRandomNumberGenerator()
        var wanted: [Int] = []
        while wanted.count < 3000 {
            // Mostly runs of consecutive numbers (hits and misses), sometimes a jump anywhere.
            var n = Int.random(in: -5...605, using: &rng)
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                wanted.append(n)
                n += Bool.random(using: &rng) ? 1 : 3
            }
        }
        try env.withReadTransaction { tx in
            try tx.withSequentialReader(db) { reader in
                for n in wanted {
                    let k = n < 0 ? [0, 5] : key(n)
                    let expected = try tx.get(db, k)
                    #expect(try reader.withValue(k) { Array($0) } == expected)
                }
            }
        }
        env.close()
    }

    @Test("prefix and range scans follow byte order, forwards and backwards")
    func scans() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20))
        let db = try env.openDatabase("t", create: true)
        let keys: [[UInt8]] = [[0x01], [0x01, 0x00], [0x01, 0x05], [0x01, 0xFF], [0x02], [0x02, 0x01], [0xFF, 0xFF]]
        try env.withWriteTransaction { txn throws in
            for k in keys.shuffled() { try txn.put(db, k, k) }
        }
        func collect(_ lower: [UInt8]?, _ upper: [UInt8]?, reverse: Bool) throws -> [[UInt8]] {
            try env.withReadTransaction { txn throws in
                var out: [[UInt8]] = []
                try txn.scan(db, from: lower, to: upper, reverse: reverse) { k, v in
                    #expect(Array(k) == Array(v))
                    out.append(Array(k))
                    return true
                }
                return out
            }
        }
        #expect(try collect(nil, nil, reverse: false) == keys)
        #expect(try collect(nil, nil, reverse: true) == keys.reversed())
        let prefix: [UInt8] = [0x01]
        #expect(try collect(prefix, prefixUpperBound(prefix), reverse: false) == Array(keys[0...3]))
        #expect(try collect(prefix, prefixUpperBound(prefix), reverse: true) == Array(keys[0...3]).reversed())
        #expect(try collect([0x01, 0x05], [0x02, 0x01], reverse: false) == [[0x01, 0x05], [0x01, 0xFF], [0x02]])
        #expect(try collect([0x01, 0x05], [0x02, 0x01], reverse: true) == [[0x02], [0x01, 0xFF], [0x01, 0x05]])
        #expect(try collect([0x03], [0x04], reverse: true) == [])
        #expect(prefixUpperBound([0xFF, 0xFF]) == nil)
        #expect(prefixUpperBound([0x01, 0xFF]) == [0x02])
        // Stopping early.
        let first = try env.withReadTransaction { txn -> Int in
            var n = 0
            try txn.scan(db) { _, _ in n += 1; return n < 2 }
            return n
        }
        #expect(first == 2)
        env.close()
    }

    @Test("put without overwrite, delete of a missing key, oversized keys")
    func writeEdges() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20))
        let db = try env.openDatabase("t", create: true)
        try env.withWriteTransaction { txn throws in
            #expect(try txn.put(db, [1], [1], overwrite: false))
            #expect(try !txn.put(db, [1], [2], overwrite: false))
            #expect(try txn.get(db, [1]) == [1])
            #expect(try !txn.delete(db, [9]))
            #expect(throws: LMDBError.self) { try txn.put(db, [UInt8](repeating: 1, count: 600), [1]) }
            #expect(txn.poison == nil, "a rejected key must not break the transaction")
            try txn.put(db, [2], [2])
            // Insert-or-read: a new key is stored, an existing one is read and left alone.
            func inline(_ v: UInt64) -> InlineBytes {
                var bytes = InlineBytes()
                bytes.append(v)
                return bytes
            }
            let before = txn.mutationCount
            #expect(try txn.insert(db, inline(3), inline(30)) { Array($0) } == nil)
            #expect(txn.mutationCount == before + 1)
            #expect(try txn.insert(db, inline(3), inline(31)) { Array($0) } == inline(30).array)
            #expect(txn.mutationCount == before + 1, "finding the key writes nothing")
            #expect(try txn.get(db, inline(3).array) == inline(30).array)
            // Read, then write back through the same cursor; a cursor moved meanwhile (or
            // never positioned on the key) falls back to an ordinary put.
            var cursor = try txn.updateCursor(db)
            #expect(try cursor.withValue(inline(9)) { Array($0) } == nil)
            var value = try #require(try cursor.withValue(inline(3)) { Array($0) })
            value[7] = 33
            try value.withUnsafeBytes { try txn.replace(cursor, inline(3), $0) }
            #expect(try txn.get(db, inline(3).array) == inline(33).array)
            _ = try cursor.withValue(inline(3)) { _ in () }
            try inline(44).withUnsafeBytes { try txn.replace(cursor, inline(4), $0) }
            #expect(try txn.get(db, inline(4).array) == inline(44).array)
            #expect(try txn.get(db, inline(3).array) == inline(33).array, "the entry under the cursor is untouched")
            // The next key is one step of the cursor; any other key (before, a gap, missing)
            // is searched. Keys now: [1], [2], 3, 4.
            _ = try cursor.withValue(inline(3)) { _ in () }
            #expect(try cursor.withValue(inline(4)) { Array($0) } == inline(44).array)
            #expect(try cursor.withValue(inline(3)) { Array($0) } == inline(33).array)
            #expect(try cursor.withValue(inline(5)) { Array($0) } == nil)
            #expect(try cursor.withValue(inline(4)) { Array($0) } == inline(44).array)
            #expect(try cursor.withValue(inline(9)) { Array($0) } == nil, "past the end")
        }
        #expect(try env.withReadTransaction { try $0.count(db) } == 4)
        env.close()
    }

    @Test("pooled read transactions work from many threads at once and see new commits")
    func readPool() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 16 << 20))
        let db = try env.openDatabase("t", create: true)
        let pool = LMDBReadPool(environment: env, capacity: 4)
        _ = try env.withWriteTransaction { try $0.put(db, [0], [0]) }
        let counts = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    await Task.detached {
                        (try? pool.read { try $0.count(db) }) ?? -1
                    }.value
                }
            }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts.allSatisfy { $0 == 1 })
        _ = try env.withWriteTransaction { try $0.put(db, [1], [1]) }
        #expect(try pool.read { try $0.count(db) } == 2, "a renewed transaction sees the latest commit")
        pool.close()
        #expect(throws: LMDBError.self) { try pool.read { try $0.count(db) } }
        env.close()
    }

    @Test("usage reports map size, pages and readers")
    func usage() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 32 << 20, maxReaders: 50))
        let usage = try env.usage()
        #expect(usage.mapSize == 32 << 20)
        #expect(usage.maxReaders == 50)
        #expect(usage.usedPages >= 1)
        #expect(try env.clearStaleReaders() == 0)
        env.close()
    }
}
