import Foundation
import TernCore
import TernLMDB
import TernStore

/// One integrity problem found by `tern check`.
public struct Problem: Codable, Sendable {
    /// Which rule failed, e.g. `mailbox.device_missing`.
    public var rule: String
    public var table: String
    /// The key (hex) of the entry that breaks the rule.
    public var key: String
    public var detail: String
}

public struct CheckReport: Codable, Sendable {
    /// Entries visited per table.
    public var checked: [String: Int]
    /// Problems by rule.
    public var counts: [String: Int]
    /// The first problems found (at most `limit`).
    public var problems: [Problem]
    public var ok: Bool { counts.isEmpty }
}

extension Inspector {
    /// `tern check`: cross-references every table against the ones it points into, and
    /// decodes every record. Reads only; reports, never repairs. Each page is checked inside
    /// its own read transaction, so an entry and the entries it refers to are seen at the
    /// same commit.
    public func check(limit: Int = 100) throws -> CheckReport {
        var checked: [String: Int] = [:]
        var counts: [String: Int] = [:]
        var problems: [Problem] = []
        func report(_ rule: String, _ table: String, _ key: UnsafeRawBufferPointer, _ detail: String) {
            counts[rule, default: 0] += 1
            if problems.count < limit {
                problems.append(Problem(rule: rule, table: table, key: key.map { String(format: "%02x", $0) }.joined(), detail: detail))
            }
        }
        func decodes<R: StoreRecord>(_ type: R.Type, _ table: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> R? {
            do {
                return try R.decode(value)
            } catch {
                report("\(table).corrupt", table, key, "\(error)")
                return nil
            }
        }

        // Users and their phone index.
        try scan({ $0.users }) { tx, key, value in
            checked["users", default: 0] += 1
            guard let user = decodes(UserRecord.self, "users", key, value) else { return true }
            if try tx.userID(phone: user.phone) != user.id {
                report("users.phone_index", "users", key, "phone \(user.phone) does not point back to the user")
            }
            return true
        }
        try scan({ $0.phones }) { tx, key, value in
            checked["phones", default: 0] += 1
            guard let id = value.id(at: 0) else {
                report("phones.corrupt", "phones", key, "value is not a user id")
                return true
            }
            if try tx.user(id) == nil { report("phones.user_missing", "phones", key, "user \(id) does not exist") }
            return true
        }
        // Devices, both directions of the per-user index.
        try scan({ $0.devices }) { tx, key, value in
            checked["devices", default: 0] += 1
            guard let device = decodes(DeviceRecord.self, "devices", key, value) else { return true }
            if try tx.user(device.userID) == nil {
                report("devices.user_missing", "devices", key, "device \(device.number): user \(device.userID) does not exist")
            }
            if try tx.device(user: device.userID, clientID: device.clientID)?.number != device.number {
                report("devices.index_missing", "devices", key, "device \(device.number) is not in user_devices")
            }
            return true
        }
        try scan({ $0.userDevices }) { tx, key, value in
            checked["user_devices", default: 0] += 1
            var reader = ByteReader(value, what: "user_devices")
            guard let user = key.id(at: 0), let number = try? reader.u64() else {
                report("user_devices.corrupt", "user_devices", key, "malformed entry")
                return true
            }
            guard let device = try tx.device(number: number) else {
                report("user_devices.device_missing", "user_devices", key, "device \(number) does not exist")
                return true
            }
            if device.userID != user {
                report("user_devices.wrong_user", "user_devices", key, "device \(number) belongs to \(device.userID), not \(user)")
            }
            return true
        }
        // Sessions point at their user and device.
        try scan({ $0.sessions }) { tx, key, value in
            checked["sessions", default: 0] += 1
            guard let session = decodes(SessionRecord.self, "sessions", key, value) else { return true }
            if try tx.user(session.userID) == nil {
                report("sessions.user_missing", "sessions", key, "user \(session.userID) does not exist")
            }
            if try tx.device(number: session.deviceNumber) == nil {
                report("sessions.device_missing", "sessions", key, "device \(session.deviceNumber) does not exist")
            }
            return true
        }
        // Chats: a head, a consistent member count, at least one admin in a group.
        try scan({ $0.chats }) { tx, key, value in
            checked["chats", default: 0] += 1
            guard let chat = decodes(ChatRecord.self, "chats", key, value), let id = key.id(at: 0) else { return true }
            if try tx.chatHead(id) == nil { report("chats.head_missing", "chats", key, "chat \(id) has no chat_heads entry") }
            let members = try tx.members(of: id)
            if members.count != Int(chat.memberCount) {
                report("chats.member_count", "chats", key, "chat \(id) says \(chat.memberCount) members, has \(members.count)")
            }
            if chat.kind == .group && !members.isEmpty && !members.contains(where: { $0.record.role == .admin }) {
                report("chats.no_admin", "chats", key, "group \(id) has no admin")
            }
            return true
        }
        try scan({ $0.chatMembers }) { tx, key, value in
            checked["chat_members", default: 0] += 1
            guard decodes(MemberRecord.self, "chat_members", key, value) != nil,
                let chat = key.id(at: 0), let user = key.id(at: 16)
            else { return true }
            if try tx.chat(chat) == nil { report("chat_members.chat_missing", "chat_members", key, "chat \(chat) does not exist") }
            if try tx.user(user) == nil { report("chat_members.user_missing", "chat_members", key, "user \(user) does not exist") }
            if try tx.userChat(user: user, chat: chat) == nil {
                report("chat_members.user_chat_missing", "chat_members", key, "user \(user) has no user_chats entry for \(chat)")
            }
            return true
        }
        try scan({ $0.userChats }) { tx, key, value in
            checked["user_chats", default: 0] += 1
            guard decodes(UserChatState.self, "user_chats", key, value) != nil,
                let user = key.id(at: 0), let chat = key.id(at: 16)
            else { return true }
            if try tx.chat(chat) == nil { report("user_chats.chat_missing", "user_chats", key, "chat \(chat) does not exist") }
            if try tx.member(chat: chat, user: user) == nil {
                report("user_chats.not_member", "user_chats", key, "user \(user) is not a member of \(chat)")
            }
            return true
        }
        // History: every message in an existing chat, below the chat's head.
        try scan({ $0.messages }) { tx, key, value in
            checked["messages", default: 0] += 1
            guard let record = decodes(MessageRecord.self, "messages", key, value), let chat = key.id(at: 0) else { return true }
            let seq = key.u64(at: 16)
            if record.flags & MessageRecord.inlineReceiptFlag != 0 && record.recipients != 1 {
                report("messages.inline_receipt", "messages", key, "receipt kept in the record but \(record.recipients) recipients")
            }
            guard let head = try tx.chatHead(chat) else {
                report("messages.chat_missing", "messages", key, "chat \(chat) has no head")
                return true
            }
            if seq > head.lastSeq { report("messages.beyond_head", "messages", key, "seq \(seq) > chat head \(head.lastSeq)") }
            return true
        }
        try scan({ $0.receipts }) { tx, key, value in
            checked["receipts", default: 0] += 1
            guard decodes(ReceiptRecord.self, "receipts", key, value) != nil, let chat = key.id(at: 0) else { return true }
            let id = MessageID(chat: chat, seq: key.u64(at: 16))
            guard let message = try tx.message(id) else {
                report("receipts.message_missing", "receipts", key, "message \(id) does not exist")
                return true
            }
            if message.inlineReceipt != nil {
                report("receipts.inline_message", "receipts", key, "message \(id) keeps its receipt in its record")
            }
            return true
        }
        // Mailboxes: every entry belongs to an existing device, below its mailbox head; a
        // message entry stored as a reference (empty data) names a message in the history.
        var lastDevice: UInt64?
        var deviceExists = false
        var head: UInt64 = 0
        try scan({ $0.mailbox }) { tx, key, value in
            checked["mailbox", default: 0] += 1
            let device = key.u64(at: 0)
            let seq = key.u64(at: 8)
            if device != lastDevice {
                lastDevice = device
                deviceExists = try tx.device(number: device) != nil
                head = try tx.mailboxHead(device: device)
                if !deviceExists { report("mailbox.device_missing", "mailbox", key, "device \(device) does not exist") }
            }
            if seq > head { report("mailbox.beyond_head", "mailbox", key, "seq \(seq) > mailbox head \(head) of device \(device)") }
            if let entry = decodes(MailboxEntry.self, "mailbox", key, value), entry.kind == .message, entry.data.isEmpty,
                try tx.message(entry.message) == nil
            {
                report("mailbox.message_missing", "mailbox", key, "message \(entry.message) does not exist")
            }
            return true
        }
        return CheckReport(checked: checked, counts: counts, problems: problems)
    }
}
