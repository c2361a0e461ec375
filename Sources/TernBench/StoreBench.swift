// tern-bench: the store's durable write rate through the group-commit writer.
//
// Built only with TERN_BENCH=1 (see Ops/bench-store). For each batch size B it keeps 2·B
// writers busy against a GroupCommitWriter whose maxBatch is B, each write one 200-byte
// value under a 16-byte big-endian key (mailbox, sequence) — the same data as
// ../shared/bench/limits/lmdb_put.c, so the two can be compared on one disk in one run.
//
// Usage: tern-bench store DIR N BATCH [sync|nosync]   → one JSON line
import Dispatch
import Foundation
import TernLMDB


final class Stats: @unchecked Sendable {
    let lock = NSLock()
    var commits = 0
    var commitNanos: [UInt64] = []
    var totalNanos: UInt64 = 0
    func add(_ r: CommitReport) {
        lock.lock()
        commits += 1
        totalNanos += r.totalNanoseconds
        commitNanos.append(r.commitNanoseconds)
        lock.unlock()
    }
}

final class Counter: @unchecked Sendable {
    let lock = NSLock()
    let limit: Int
    var next = 0
    init(limit: Int) { self.limit = limit }
    func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }
}

func key(_ k: Int) -> [UInt8] {
    let box = UInt64(k % 1000)
    let seq = UInt64(k / 1000)
    var out = [UInt8](repeating: 0, count: 16)
    for i in 0..<8 {
        out[i] = UInt8(truncatingIfNeeded: box >> UInt64(56 - 8 * i))
        out[8 + i] = UInt8(truncatingIfNeeded: seq >> UInt64(56 - 8 * i))
    }
    return out
}

func storeBenchmark(_ args: [String]) async throws {
    guard args.count >= 4, let n = Int(args[2]), let batch = Int(args[3]) else {
        FileHandle.standardError.write(Data("usage: tern-bench store DIR N BATCH [sync|nosync]\n".utf8))
        exit(2)
    }
    let directory = args[1]
    let durability = LMDBDurability(rawValue: args.count > 4 ? args[4] : "sync") ?? .sync
    try? FileManager.default.removeItem(atPath: directory)
    let environment = try LMDBEnvironment(
        path: directory, configuration: LMDBConfiguration(mapSize: 8 << 30, durability: durability))
    let db = try environment.openDatabase("bench", create: true)


    let stats = Stats()
    let writer = GroupCommitWriter(environment: environment, maxBatch: batch) { stats.add($0) }
    let value = [UInt8](repeating: 0x78, count: 200)



    let counter = Counter(limit: n)
    let writers = max(2, 2 * batch)
    let start = DispatchTime.now().uptimeNanoseconds
    let latencies: [UInt64] = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for _ in 0..<writers {
            group.addTask {
                var mine: [UInt64] = []
                while let k = counter.take() {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let kk = key(k)
                    _ = try await writer.write { txn in try txn.put(db, kk, value) }
                    mine.append(DispatchTime.now().uptimeNanoseconds - t0)
                }
                return mine
            }
        }
        var all: [UInt64] = []
        for try await part in group { all += part }
        return all
    }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    await writer.shutdown()
    let count = try environment.withReadTransaction { try $0.count(db) }
    precondition(count == n, "expected \(n) entries, found \(count)")
    environment.close()

    let sorted = latencies.sorted()
    func percentile(_ p: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000 }
    let commitSorted = stats.commitNanos.sorted()
    let line = String(
        format: "{\"impl\":\"tern\",\"mode\":\"%@\",\"n\":%d,\"batch\":%d,\"secs\":%.3f,\"puts_per_s\":%.0f,\"commits_per_s\":%.0f,\"mean_batch\":%.1f,\"write_p50_us\":%.1f,\"write_p99_us\":%.1f,\"commit_p50_us\":%.1f,\"writer_busy_frac\":%.2f,\"commit_frac\":%.2f}",
        durability.rawValue, n, batch, elapsed, Double(n) / elapsed, Double(stats.commits) / elapsed,
        Double(n) / Double(max(1, stats.commits)), percentile(0.5), percentile(0.99),
        Double(commitSorted[commitSorted.count / 2]) / 1000,
        Double(stats.totalNanos) / 1e9 / elapsed, Double(stats.commitNanos.reduce(0, +)) / 1e9 / elapsed)
    print(line)

}
