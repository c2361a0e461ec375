import TernCore
import TernRelay
import TernStore

/// The users API's logic over the store: profiles, privacy, contacts, blocks, push tokens.
/// Every method validates its input first (400 VALIDATION_ERROR naming the field) and then
/// does one read or one group-committed write.
struct UserDirectory: Sendable {
    let store: Store
    let clock: any TernClock
    let registry: SessionRegistry

    // MARK: profile

    func me(_ user: TernID) async throws -> UserDTO {
        guard let record = try await store.read({ try $0.user(user) }) else {
            throw TernError(.notFound, "user not found")
        }
        return UserDTO(own: record)
    }

    struct ProfileUpdate: Decodable, Sendable {
        var displayName: String?
        var avatarURL: String?
        var statusText: String?

        enum CodingKeys: String, CodingKey {
            case displayName = "display_name"
            case avatarURL = "avatar_url"
            case statusText = "status_text"
        }
    }

    func updateProfile(_ user: TernID, _ update: ProfileUpdate) async throws -> UserDTO {
        if update.displayName == nil && update.avatarURL == nil && update.statusText == nil {
            throw TernError.validation("give at least one of display_name, avatar_url, status_text")
        }
        if let name = update.displayName { try Validate.text(name, field: "display_name", max: Limits.displayNameMax) }
        if let about = update.statusText { try Validate.text(about, field: "status_text", max: Limits.statusTextMax, multiline: true) }
        if let url = update.avatarURL { try Validate.url(url, field: "avatar_url", max: Limits.avatarURLMax) }
        let now = clock.now()
        let record = try await store.write { tx -> UserRecord in
            guard var record = try tx.user(user) else { throw TernError(.notFound, "user not found") }
            if let name = update.displayName { record.displayName = name }
            if let url = update.avatarURL { record.avatarURL = url }
            if let about = update.statusText { record.statusText = about }
            record.updatedAt = now
            try tx.putUser(record)
            return record
        }
        return UserDTO(own: record)
    }

    /// What `viewer` may see of `target`: 403 if `target` blocked `viewer`.
    func profile(of target: TernID, viewer: TernID) async throws -> UserDTO {
        try await store.read { tx in
            guard let record = try tx.user(target) else { throw TernError(.notFound, "user not found") }
            if target == viewer { return UserDTO(own: record) }
            if try tx.isBlocked(blocker: target, blocked: viewer) {
                throw TernError(.forbidden, "user not available")
            }
            return UserDTO(record, visibility: try visibility(tx, owner: target, viewer: viewer))
        }
    }

    /// Privacy rules: photo/about/last-seen per the owner's settings; the phone number only
    /// to someone who has it already (it is in their contacts) or whom the owner added.
    private func visibility(_ tx: ReadTx, owner: TernID, viewer: TernID) throws -> ProfileVisibility {
        let privacy = try tx.privacy(owner) ?? PrivacyRecord(updatedAt: Timestamp(milliseconds: 0))
        let knowsPhone = try tx.hasContact(owner: viewer, contact: owner) || tx.hasContact(owner: owner, contact: viewer)
        return ProfileVisibility(
            phone: knowsPhone,
            photo: try tx.allows(privacy.profilePhoto, owner: owner, viewer: viewer),
            about: try tx.allows(privacy.about, owner: owner, viewer: viewer),
            lastSeen: try tx.allows(privacy.lastSeen, owner: owner, viewer: viewer))
    }

    // MARK: presence

    /// Online (any device connected) and last seen, as `viewer` may see them: the last-seen
    /// privacy setting and blocks hide both, as in the WebSocket `presence` events.
    func presence(of target: TernID, viewer: TernID) async throws -> PresenceDTO {
        let online = registry.isOnline(user: target)
        return try await store.read { tx in
            guard try tx.user(target) != nil else { throw TernError(.notFound, "user not found") }
            var dto = PresenceDTO(userID: target.description, online: false, lastSeen: nil)
            guard try Relay.canSeePresence(tx, of: target, viewer: viewer) else { return dto }
            dto.online = online
            if let seen = try tx.presence(target) { dto.lastSeen = seen.lastSeen.rfc3339 }
            return dto
        }
    }

    // MARK: privacy

    func privacy(_ user: TernID) async throws -> PrivacyDTO {
        let record = try await store.read { try $0.privacy(user) } ?? PrivacyRecord(updatedAt: Timestamp(milliseconds: 0))
        return Self.dto(user, record)
    }

    private static func dto(_ user: TernID, _ record: PrivacyRecord) -> PrivacyDTO {
        PrivacyDTO(
            userID: user.description, lastSeen: record.lastSeen.rawValue, profilePhoto: record.profilePhoto.rawValue,
            about: record.about.rawValue, readReceipts: record.readReceipts,
            updatedAt: record.updatedAt.milliseconds == 0 ? "" : record.updatedAt.rfc3339)
    }

    struct PrivacyUpdate: Decodable, Sendable {
        var lastSeen: String?
        var profilePhoto: String?
        var about: String?
        var readReceipts: Bool?

        enum CodingKeys: String, CodingKey {
            case lastSeen = "last_seen"
            case profilePhoto = "profile_photo"
            case about
            case readReceipts = "read_receipts"
        }
    }

    /// Partial update: only the given fields change. Unknown values are a 400.
    func updatePrivacy(_ user: TernID, _ update: PrivacyUpdate) async throws -> PrivacyDTO {
        func visibility(_ value: String?, _ field: String) throws -> Visibility? {
            guard let value else { return nil }
            guard let v = Visibility(rawValue: value) else {
                throw TernError.validation("\(field) must be one of everyone, contacts, nobody")
            }
            return v
        }
        let lastSeen = try visibility(update.lastSeen, "last_seen")
        let photo = try visibility(update.profilePhoto, "profile_photo")
        let about = try visibility(update.about, "about")
        if lastSeen == nil && photo == nil && about == nil && update.readReceipts == nil {
            throw TernError.validation("give at least one of last_seen, profile_photo, about, read_receipts")
        }
        let now = clock.now()
        let record = try await store.write { tx -> PrivacyRecord in
            var record = try tx.privacy(user) ?? PrivacyRecord(updatedAt: now)
            if let lastSeen { record.lastSeen = lastSeen }
            if let photo { record.profilePhoto = photo }
            if let about { record.about = about }
            if let receipts = update.readReceipts { record.readReceipts = receipts }
            record.updatedAt = now
            try tx.putPrivacy(user, record)
            return record
        }
        return Self.dto(user, record)
    }

    // MARK: contacts

    /// Looks up registered users among `phones`, adds them to the caller's contacts.
    func syncContacts(_ user: TernID, phones: [String]) async throws -> ContactSyncDTO {
        if phones.isEmpty { throw TernError.validation("phones must list at least one number") }
        if phones.count > Limits.contactSyncMax {
            throw TernError.validation("phones may list at most \(Limits.contactSyncMax) numbers per request")
        }
        var normalized: [String] = []
        var invalid: [String] = []
        var seen = Set<String>()
        for raw in phones {
            guard let phone = Validate.normalizedPhone(raw) else {
                invalid.append(String(raw.prefix(32)))
                continue
            }
            if seen.insert(phone).inserted { normalized.append(phone) }
        }
        let now = clock.now()
        let phonesToLook = normalized
        let found = try await store.write { tx -> [RegisteredUserDTO] in
            var out: [RegisteredUserDTO] = []
            for phone in phonesToLook {
                guard let id = try tx.userID(phone: phone), id != user, let record = try tx.user(id) else { continue }
                if try !tx.hasContact(owner: user, contact: id) {
                    try tx.putContact(owner: user, contact: id, ContactRecord(createdAt: now))
                }
                let privacy = try tx.privacy(id) ?? PrivacyRecord(updatedAt: now)
                let photo = try tx.allows(privacy.profilePhoto, owner: id, viewer: user) && !tx.isBlocked(blocker: id, blocked: user)
                out.append(RegisteredUserDTO(phone: phone, userID: id.description, displayName: record.displayName, avatarURL: photo ? record.avatarURL : nil))
            }
            return out
        }
        return ContactSyncDTO(registeredUsers: found, invalid: invalid)
    }

    /// The caller's contacts and blocked users.
    func contacts(_ user: TernID) async throws -> [ContactDTO] {
        try await store.read { tx in
            let contacts = try tx.contacts(of: user)
            let blocked = Set(try tx.blockedUsers(of: user))
            var ids = contacts.map(\.contact)
            for id in blocked where !ids.contains(id) { ids.append(id) }
            let entries = Dictionary(uniqueKeysWithValues: contacts.map { ($0.contact, $0.record) })
            return try ids.compactMap { id -> ContactDTO? in
                guard let record = try tx.user(id) else { return nil }
                let vis = try visibility(tx, owner: id, viewer: user)
                let entry = entries[id]
                return ContactDTO(
                    id: id.description, userID: user.description, contactID: id.description,
                    phone: vis.phone ? record.phone : nil, displayName: record.displayName,
                    avatarURL: try vis.photo && !tx.isBlocked(blocker: id, blocked: user) ? record.avatarURL : nil,
                    nickname: entry?.nickname ?? "", isContact: entry != nil, isBlocked: blocked.contains(id),
                    createdAt: (entry?.createdAt ?? record.createdAt).rfc3339)
            }
        }
    }

    // MARK: blocking

    func setBlocked(_ user: TernID, target: TernID, blocked: Bool) async throws {
        if user == target { throw TernError.validation("you cannot block yourself") }
        let now = clock.now()
        try await store.write { tx in
            guard try tx.user(target) != nil else { throw TernError(.notFound, "user not found") }
            if blocked {
                if try !tx.isBlocked(blocker: user, blocked: target) {
                    try tx.putBlock(blocker: user, blocked: target, BlockRecord(createdAt: now))
                }
            } else {
                try tx.deleteBlock(blocker: user, blocked: target)
            }
        }
    }

    // MARK: push tokens

    struct PushRegistration: Decodable, Sendable {
        var token: String?
        var fcmToken: String?
        var deviceToken: String?
        var platform: String?

        enum CodingKeys: String, CodingKey {
            case token
            case fcmToken = "fcm_token"
            case deviceToken = "device_token"
            case platform
        }
    }

    /// Push platforms (the seed's `device_tokens` CHECK).
    static let pushPlatforms: Set<String> = ["android", "ios", "web"]

    func registerPush(_ claims: (user: TernID, deviceNumber: UInt64, deviceID: String), _ input: PushRegistration) async throws -> PushDeviceDTO {
        guard let token = input.token ?? input.fcmToken ?? input.deviceToken, !token.isEmpty else {
            throw TernError.validation("token is required")
        }
        guard token.utf8.count <= Limits.pushTokenMax else {
            throw TernError.validation("token must be at most \(Limits.pushTokenMax) bytes")
        }
        try Validate.text(token, field: "token", max: Limits.pushTokenMax)
        guard let platform = input.platform, Self.pushPlatforms.contains(platform) else {
            throw TernError.validation("platform must be one of android, ios, web")
        }
        let now = clock.now()
        let record = try await store.write { tx -> PushTokenRecord in
            let created = try tx.pushToken(token).map { $0.userID == claims.user ? $0.createdAt : now } ?? now
            let record = PushTokenRecord(userID: claims.user, deviceNumber: claims.deviceNumber, platform: platform, createdAt: created, updatedAt: now)
            try tx.putPushToken(token, record)
            return record
        }
        return PushDeviceDTO(
            id: token, userID: claims.user.description, deviceID: claims.deviceID, token: token, platform: platform,
            createdAt: record.createdAt.rfc3339, updatedAt: record.updatedAt.rfc3339)
    }

    /// Removes the caller's `token`; 404 if it is not theirs.
    func removePush(_ user: TernID, token: String) async throws {
        try await store.write { tx in
            guard let record = try tx.pushToken(token), record.userID == user else {
                throw TernError(.notFound, "push token not registered")
            }
            try tx.deletePushToken(token)
        }
    }
}
