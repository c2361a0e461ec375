import Foundation
import Logging
import TernCore
import TernStore

/// `tern-bench populate DATA_DIR DEVICES PENDING`: fills a data folder with DEVICES users of
/// one device each and PENDING mailbox frames (~300 bytes) per device, written through the
/// store's group-commit writer, for timing the operator tools on a large store.
func populate(_ arguments: [String]) async throws {
    guard arguments.count >= 4, let devices = Int(arguments[2]), let pending = Int(arguments[3]) else {
        FileHandle.standardError.write(Data("usage: tern-bench populate DATA_DIR DEVICES PENDING\n".utf8))
        exit(2)
    }
    var logger = Logger(label: "populate")
    logger.logLevel = .warning
    let store = try Store(
        configuration: StoreConfiguration(path: arguments[1] + "/store", mapSize: 32 << 30, durability: .nosync), logger: logger)
    let started = ContinuousClock.now
    let now = SystemClock().now()
    let body = Array(String(repeating: "x", count: 200).utf8)
    let chunk = 1000
    var done = 0
    while done < devices {
        let count = min(chunk, devices - done)
        let first = done
        try await store.write { tx in
            for i in first..<(first + count) {
                let user = TernID.random()
                try tx.putUser(UserRecord(id: user, phone: "+1555\(String(format: "%07d", i))", createdAt: now, updatedAt: now))
                let number = try tx.allocateDeviceNumber()
                try tx.putDevice(DeviceRecord(
                    number: number, userID: user, clientID: "bench-\(i)", name: "bench", platform: "android",
                    createdAt: now, lastLoginAt: now, sessionID: TernID.random()))
                for p in 0..<pending {
                    let id = MessageID(chat: user, seq: UInt64(p + 1))
                    _ = try tx.appendToMailbox(device: number, MailboxEntry(
                        kind: .message, event: "message.new", data: body, message: id, sender: user,
                        enqueuedAt: Timestamp(milliseconds: now.milliseconds - Int64(i))))
                }
            }
        }
        done += count
    }
    try store.environment.sync()
    await store.close()
    let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
    print("{\"devices\":\(devices),\"pending_per_device\":\(pending),\"seconds\":\(String(format: "%.1f", seconds))}")
}
