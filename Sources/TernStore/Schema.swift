import TernCore
import TernLMDB

/// The store's tables (LMDB named databases) and their key layouts.
///
/// Schema version 1. Keys are raw bytes; integers in keys are big-endian so that byte order
/// is numeric order; ids are their 16 raw bytes; phones and tokens are their UTF-8 bytes.
/// Every value starts with a layout version byte (see each record's file).
///
/// | table          | key                                   | value                        |
/// |----------------|---------------------------------------|------------------------------|
/// | `meta`         | ASCII name                            | per name (see `MetaKey`)     |
/// | `users`        | user id (16)                          | `UserRecord`                 |
/// | `phones`       | E.164 phone (UTF-8)                   | user id (16)                 |
/// | `devices`      | device number (u64)                   | `DeviceRecord`               |
/// | `user_devices` | user id (16) ‖ client device id       | device number (u64)          |
/// | `sessions`     | session id (16)                       | `SessionRecord`              |
/// | `refresh`      | SHA-256 of the refresh token (32)     | `RefreshTokenRecord`         |
/// | `otps`         | E.164 phone (UTF-8)                   | `OtpRecord`                  |
/// | `contacts`     | owner id (16) ‖ contact user id (16)  | `ContactRecord`              |
/// | `blocks`       | blocker id (16) ‖ blocked id (16)     | `BlockRecord`                |
/// | `privacy`      | user id (16)                          | `PrivacyRecord`              |
/// | `push_tokens`  | push token (UTF-8)                    | `PushTokenRecord`            |
/// | `user_push`    | user id (16) ‖ push token (UTF-8)     | empty                        |
/// | `presence`     | user id (16)                          | `PresenceRecord`             |
/// | `chats`        | chat id (16)                          | `ChatRecord`                 |
/// | `chat_heads`   | chat id (16)                          | `ChatHead` (last seq, activity) |
/// | `chat_members` | chat id (16) ‖ user id (16)           | `MemberRecord`               |
/// | `user_chats`   | user id (16) ‖ chat id (16)           | `UserChatState`              |
/// | `direct_chats` | lower user id (16) ‖ higher user id (16) | chat id (16)              |
/// | `messages`     | chat id (16) ‖ seq (u64)              | `MessageRecord`              |
/// | `receipts`     | chat id (16) ‖ seq (u64) ‖ user id (16) | `ReceiptRecord` (messages with several recipients; one recipient's is in `MessageRecord`) |
/// | `dedupe`       | sender id (16) ‖ client_msg_id (UTF-8) | chat id (16) ‖ seq (u64)    |
/// | `mailbox`      | device number (u64) ‖ seq (u64)       | `MailboxEntry`               |
/// | `mailbox_heads`| device number (u64)                   | last seq (u64)               |
/// | `media`        | media id (16)                         | `MediaRecord`                |
/// | `media_chats`  | media id (16) ‖ chat id (16)          | empty                        |
public enum Schema {
    /// The schema this binary writes. A store with a higher version is refused; a lower one
    /// is migrated at open.
    public static let version: UInt32 = 1

    /// Every table, in creation order.
    public static let tableNames = [
        "meta", "users", "phones", "devices", "user_devices", "sessions", "refresh", "otps",
        "contacts", "blocks", "privacy", "push_tokens", "user_push", "presence",
        "chats", "chat_heads", "chat_members", "user_chats", "direct_chats", "messages", "receipts", "dedupe",
        "mailbox", "mailbox_heads", "media", "media_chats",
    ]
}

/// Names in the `meta` table.
public enum MetaKey {
    /// u32: the schema version of the data folder.
    public static let schemaVersion = Array("schema_version".utf8)
    /// u64: the last device number handed out.
    public static let lastDeviceNumber = Array("last_device_number".utf8)
    /// u64: bumped by readiness probes (proves the writer commits).
    public static let probe = Array("probe".utf8)
}

/// The opened handles of every table.
public struct Tables: Sendable {
    public let meta: LMDBDatabase
    public let users: LMDBDatabase
    public let phones: LMDBDatabase
    public let devices: LMDBDatabase
    public let userDevices: LMDBDatabase
    public let sessions: LMDBDatabase
    public let refresh: LMDBDatabase
    public let otps: LMDBDatabase
    public let contacts: LMDBDatabase
    public let blocks: LMDBDatabase
    public let privacy: LMDBDatabase
    public let pushTokens: LMDBDatabase
    public let userPush: LMDBDatabase
    public let presence: LMDBDatabase
    public let chats: LMDBDatabase
    public let chatHeads: LMDBDatabase
    public let chatMembers: LMDBDatabase
    public let userChats: LMDBDatabase
    public let directChats: LMDBDatabase
    public let messages: LMDBDatabase
    public let receipts: LMDBDatabase
    public let dedupe: LMDBDatabase
    public let mailbox: LMDBDatabase
    public let mailboxHeads: LMDBDatabase
    public let media: LMDBDatabase
    public let mediaChats: LMDBDatabase

    /// Opens every table; creates missing ones unless the environment is read-only.
    init(environment: LMDBEnvironment) throws {
        let create = !environment.configuration.readOnly
        var opened: [String: LMDBDatabase] = [:]
        for name in Schema.tableNames {
            opened[name] = try environment.openDatabase(name, create: create)
        }
        meta = opened["meta"]!
        users = opened["users"]!
        phones = opened["phones"]!
        devices = opened["devices"]!
        userDevices = opened["user_devices"]!
        sessions = opened["sessions"]!
        refresh = opened["refresh"]!
        otps = opened["otps"]!
        contacts = opened["contacts"]!
        blocks = opened["blocks"]!
        privacy = opened["privacy"]!
        pushTokens = opened["push_tokens"]!
        userPush = opened["user_push"]!
        presence = opened["presence"]!
        chats = opened["chats"]!
        chatHeads = opened["chat_heads"]!
        chatMembers = opened["chat_members"]!
        userChats = opened["user_chats"]!
        directChats = opened["direct_chats"]!
        messages = opened["messages"]!
        receipts = opened["receipts"]!
        dedupe = opened["dedupe"]!
        mailbox = opened["mailbox"]!
        mailboxHeads = opened["mailbox_heads"]!
        media = opened["media"]!
        mediaChats = opened["media_chats"]!
    }
}

/// Key encodings, one function per table. The only place keys are built.
public enum Keys {
    public static func id(_ id: TernID) -> [UInt8] { id.bytes }

    public static func pair(_ a: TernID, _ b: TernID) -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        w.id(a)
        w.id(b)
        return w.bytes
    }

    /// An id followed by raw bytes, in one allocation (keys are built on every lookup).
    public static func idThen(_ id: TernID, _ tail: some Collection<UInt8>) -> [UInt8] {
        var w = ByteWriter(capacity: 16 + tail.count)
        w.id(id)
        w.raw(tail)
        return w.bytes
    }

    /// A message key (chat ‖ seq) followed by a user id.
    public static func idSeqID(_ chat: TernID, _ seq: UInt64, _ user: TernID) -> [UInt8] {
        var w = ByteWriter(capacity: 40)
        w.id(chat)
        w.u64(seq)
        w.id(user)
        return w.bytes
    }

    public static func u64(_ v: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 8)
        w.u64(v)
        return w.bytes
    }

    public static func text(_ s: String) -> [UInt8] { Array(s.utf8) }

    public static func userDevice(_ user: TernID, _ clientID: String) -> [UInt8] { idThen(user, clientID.utf8) }

    public static func userPush(_ user: TernID, _ token: String) -> [UInt8] { idThen(user, token.utf8) }

    /// `a ‖ b` with the lower id first: one key per unordered pair.
    public static func unorderedPair(_ a: TernID, _ b: TernID) -> [UInt8] { a < b ? pair(a, b) : pair(b, a) }

    public static func idSeq(_ id: TernID, _ seq: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 24)
        w.id(id)
        w.u64(seq)
        return w.bytes
    }

    public static func u64Pair(_ a: UInt64, _ b: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.u64(a)
        w.u64(b)
        return w.bytes
    }
}

/// The keys of the per-message store operations built inline (no array per key); each
/// equals its `Keys` counterpart byte for byte.
extension Keys {
    public static func idInline(_ id: TernID) -> InlineBytes {
        var k = InlineBytes()
        k.append(id.high)
        k.append(id.low)
        return k
    }

    public static func idSeqInline(_ id: TernID, _ seq: UInt64) -> InlineBytes {
        var k = idInline(id)
        k.append(seq)
        return k
    }

    public static func u64Inline(_ v: UInt64) -> InlineBytes {
        var k = InlineBytes()
        k.append(v)
        return k
    }

    public static func u64PairInline(_ a: UInt64, _ b: UInt64) -> InlineBytes {
        var k = u64Inline(a)
        k.append(b)
        return k
    }

    /// `idThen(id, text.utf8)`, or nil when it does not fit inline.
    public static func idThenInline(_ id: TernID, _ text: String) -> InlineBytes? {
        var k = idInline(id)
        var text = text
        return text.withUTF8 { utf8 -> InlineBytes? in
            guard k.fits(utf8.count) else { return nil }
            k.append(contentsOf: UnsafeRawBufferPointer(utf8))
            return k
        }
    }
}
