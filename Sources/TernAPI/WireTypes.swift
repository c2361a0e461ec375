import TernCore
import TernStore

// JSON shapes of the REST contract (SEED-API "REST API"), snake_case as the seed's clients
// read them. Optional fields that are nil are omitted.

/// A user as shown to themself (`/users/me`) or, privacy-filtered, to others.
struct UserDTO: Encodable, Sendable {
    var id: String
    var phone: String?
    var displayName: String
    var avatarURL: String?
    var statusText: String?
    var createdAt: String
    var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case id, phone
        case displayName = "display_name"
        case avatarURL = "avatar_url"
        case statusText = "status_text"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    /// The full record, for its owner.
    init(own user: UserRecord) {
        id = user.id.description
        phone = user.phone
        displayName = user.displayName
        avatarURL = user.avatarURL
        statusText = user.statusText
        createdAt = user.createdAt.rfc3339
        updatedAt = user.updatedAt.rfc3339
    }

    /// What `viewer` may see of `user`.
    init(_ user: UserRecord, visibility: ProfileVisibility) {
        id = user.id.description
        phone = visibility.phone ? user.phone : nil
        displayName = user.displayName
        avatarURL = visibility.photo ? user.avatarURL : nil
        statusText = visibility.about ? user.statusText : nil
        createdAt = user.createdAt.rfc3339
        updatedAt = user.updatedAt.rfc3339
    }
}

/// Which parts of a profile a viewer may see.
struct ProfileVisibility: Sendable {
    var phone: Bool
    var photo: Bool
    var about: Bool
    var lastSeen: Bool
}

struct PrivacyDTO: Encodable, Sendable {
    var userID: String
    var lastSeen: String
    var profilePhoto: String
    var about: String
    var readReceipts: Bool
    var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case lastSeen = "last_seen"
        case profilePhoto = "profile_photo"
        case about
        case readReceipts = "read_receipts"
        case updatedAt = "updated_at"
    }
}

struct PresenceDTO: Encodable, Sendable {
    var userID: String
    var online: Bool
    var lastSeen: String?

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case online
        case lastSeen = "last_seen"
    }
}

struct RegisteredUserDTO: Encodable, Sendable {
    var phone: String
    var userID: String
    var displayName: String
    var avatarURL: String?

    enum CodingKeys: String, CodingKey {
        case phone
        case userID = "user_id"
        case displayName = "display_name"
        case avatarURL = "avatar_url"
    }
}

struct ContactSyncDTO: Encodable, Sendable {
    var registeredUsers: [RegisteredUserDTO]
    /// Entries that were not phone numbers (after removing spaces, dashes and brackets).
    var invalid: [String]

    enum CodingKeys: String, CodingKey {
        case registeredUsers = "registered_users"
        case invalid = "invalid_phones"
    }
}

struct ContactDTO: Encodable, Sendable {
    var id: String
    var userID: String
    var contactID: String
    var phone: String?
    var displayName: String
    var avatarURL: String?
    var nickname: String
    var isContact: Bool
    var isBlocked: Bool
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id
        case userID = "user_id"
        case contactID = "contact_id"
        case phone
        case displayName = "display_name"
        case avatarURL = "avatar_url"
        case nickname
        case isContact = "is_contact"
        case isBlocked = "is_blocked"
        case createdAt = "created_at"
    }
}

struct PushDeviceDTO: Encodable, Sendable {
    var id: String
    var userID: String
    var deviceID: String?
    var token: String
    var platform: String
    var createdAt: String
    var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case id
        case userID = "user_id"
        case deviceID = "device_id"
        case token, platform
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

struct OTPSentDTO: Encodable, Sendable {
    var message: String
    var expiresInSeconds: Int64
    var otp: String?

    enum CodingKeys: String, CodingKey {
        case message
        case expiresInSeconds = "expires_in_seconds"
        case otp
    }
}

struct TokenPairDTO: Encodable, Sendable {
    var accessToken: String
    var refreshToken: String
    var tokenType = "Bearer"
    var expiresIn: Int64
    var expiresInSeconds: Int64

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case refreshToken = "refresh_token"
        case tokenType = "token_type"
        case expiresIn = "expires_in"
        case expiresInSeconds = "expires_in_seconds"
    }
}

/// The `verify-otp` answer: the token pair's fields plus who logged in on which device.
struct LoginDTO: Encodable, Sendable {
    var tokens: TokenPairDTO
    var user: UserDTO
    var isNewUser: Bool
    var deviceID: String
    var sessionID: String

    enum CodingKeys: String, CodingKey {
        case user
        case isNewUser = "is_new_user"
        case deviceID = "device_id"
        case sessionID = "session_id"
    }

    func encode(to encoder: any Encoder) throws {
        try tokens.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(user, forKey: .user)
        try container.encode(isNewUser, forKey: .isNewUser)
        try container.encode(deviceID, forKey: .deviceID)
        try container.encode(sessionID, forKey: .sessionID)
    }
}

struct MessageDTO: Encodable, Sendable {
    var message: String
}
