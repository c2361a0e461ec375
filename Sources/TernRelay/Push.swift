import TernCore
import TernStore

/// A push notification for devices that are not connected (FCM/APNs sit behind a webhook).
public struct PushRequest: Sendable {
    /// `(token, platform)` of every device to wake.
    public var tokens: [(token: String, platform: String)]
    /// `message.new` or `mailbox.pending`.
    public var event: String
    public var chat: TernID?
    public var message: MessageID?
    public var sender: TernID?
    /// Frames waiting (for `mailbox.pending`).
    public var pending: Int?

    public init(tokens: [(token: String, platform: String)], event: String, chat: TernID? = nil, message: MessageID? = nil, sender: TernID? = nil, pending: Int? = nil) {
        self.tokens = tokens
        self.event = event
        self.chat = chat
        self.message = message
        self.sender = sender
        self.pending = pending
    }
}

/// Where pushes go (the server's webhook sender); nil in `Relay` means push is off.
public protocol PushSender: Sendable {
    func send(_ push: PushRequest) async throws
}

extension ReadTx {
    /// The push tokens registered for device `number` (tokens registered without a device
    /// count for every device of their user).
    public func pushTokens(device number: UInt64) throws -> [(token: String, platform: String)] {
        guard let device = try self.device(number: number), device.active else { return [] }
        return try pushTokens(of: device.userID)
            .filter { $0.record.deviceNumber == number || $0.record.deviceNumber == 0 }
            .map { ($0.token, $0.record.platform) }
    }
}

extension Relay {
    /// Wakes the devices of `devices` that have no live session: one push per message with
    /// every token of those devices. Content is never pushed, only ids.
    func pushStored(_ devices: [UInt64], message: MessageID, sender: TernID) {
        guard let push = settings.push else { return }
        let offline = devices.filter { registry.session(device: $0) == nil }
        guard !offline.isEmpty else { return }
        let store = self.store
        let logger = self.logger
        Task {
            do {
                let tokens = try await store.read { tx in try offline.flatMap { try tx.pushTokens(device: $0) } }
                guard !tokens.isEmpty else { return }
                try await push.send(PushRequest(tokens: tokens, event: "message.new", chat: message.chat, message: message, sender: sender))
            } catch {
                logger.warning("push failed", metadata: ["push.error": "\(error)"])
            }
        }
    }

    /// An operator's "resend the push" for a device: tells its tokens how many frames wait.
    /// Nil when no such device; throws 409 when push is off.
    public func resendPush(device: UInt64) async throws -> (tokens: Int, pending: Int)? {
        guard let push = settings.push else {
            throw TernError(.conflict, "push delivery is not configured (push.webhook_url)")
        }
        let found = try await store.read { tx -> (tokens: [(token: String, platform: String)], pending: Int)? in
            guard try tx.device(number: device) != nil else { return nil }
            return (try tx.pushTokens(device: device), try tx.mailboxCount(device: device))
        }
        guard let found else { return nil }
        if !found.tokens.isEmpty {
            try await push.send(PushRequest(tokens: found.tokens, event: "mailbox.pending", pending: found.pending))
        }
        return (found.tokens.count, found.pending)
    }
}
