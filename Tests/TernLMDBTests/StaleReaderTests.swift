import Foundation
import Testing
import TernTestSupport

@testable import TernLMDB

/// A second process that opens the environment read-only through liblmdb (via Python's
/// ctypes: no extra package needed), holds a read transaction, and waits to be killed.
private let readerScript = """
    import ctypes, ctypes.util, sys, time
    lib = ctypes.CDLL(ctypes.util.find_library("lmdb") or "liblmdb.so.0")
    env = ctypes.c_void_p()
    assert lib.mdb_env_create(ctypes.byref(env)) == 0
    lib.mdb_env_set_mapsize(env, ctypes.c_size_t(64 << 20))
    lib.mdb_env_set_maxdbs(env, 8)
    MDB_RDONLY, MDB_NOTLS = 0x20000, 0x200000
    assert lib.mdb_env_open(env, sys.argv[1].encode(), MDB_RDONLY | MDB_NOTLS, 0o600) == 0
    txn = ctypes.c_void_p()
    assert lib.mdb_txn_begin(env, None, MDB_RDONLY, ctypes.byref(txn)) == 0
    print("reading", flush=True)
    time.sleep(600)
    """

@Suite("Stale reader slots")
struct StaleReaderTests {
    @Test("a reader killed with kill -9 leaves a slot that the stale-reader check clears")
    func killedReader() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let env = try LMDBEnvironment(path: dir.path, configuration: LMDBConfiguration(mapSize: 64 << 20))
        let db = try env.openDatabase("t", create: true)
        _ = try env.withWriteTransaction { try $0.put(db, [1], [1]) }
        #expect(try env.usage().readersInUse == 0)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", readerScript, dir.path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        try #require(line.contains("reading"), "the reader process did not start: \(line)")
        #expect(try env.usage().readersInUse == 1)
        #expect(try env.clearStaleReaders() == 0, "a live reader is not stale")

        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(try env.usage().readersInUse == 1, "the dead reader's slot is still taken")
        #expect(try env.clearStaleReaders() == 1)
        #expect(try env.usage().readersInUse == 0)
        env.close()
    }
}
