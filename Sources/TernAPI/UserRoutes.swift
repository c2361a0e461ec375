import Hummingbird
import TernAuth
import TernCore

/// `/api/v1/users/*` (and the seed's `/notifications/devices` aliases); all authenticated.
struct UserRoutes {
    let deps: APIDependencies
    let directory: UserDirectory

    private struct ContactSyncRequest: Decodable {
        var phones: [String]?
        var phoneNumbers: [String]?

        enum CodingKeys: String, CodingKey {
            case phones
            case phoneNumbers = "phone_numbers"
        }
    }

    func register(on api: RouterGroup<TernRequestContext>) {
        let users = api.group("users")
        users.get("me") { _, context in try Envelope.ok(try await directory.me(try context.caller().userID)) }
        users.put("me") { request, context in try await updateMe(request, context) }
        users.patch("me") { request, context in try await updateMe(request, context) }

        for path in ["privacy", "me/privacy"] {
            let route = RouterPath(stringLiteral: path)
            users.get(route) { _, context in try Envelope.ok(try await directory.privacy(try context.caller().userID)) }
            users.put(route) { request, context in try await updatePrivacy(request, context) }
            users.patch(route) { request, context in try await updatePrivacy(request, context) }
        }

        users.post("contacts/sync") { request, context in
            let body = try await BodyDecoding.decode(ContactSyncRequest.self, from: request, limit: deps.maxBodySize)
            guard let phones = body.phones ?? body.phoneNumbers else { throw TernError.validation("phones is required") }
            return try Envelope.ok(try await directory.syncContacts(try context.caller().userID, phones: phones))
        }
        users.get("contacts") { _, context in try Envelope.ok(try await directory.contacts(try context.caller().userID)) }

        for path in ["contacts/:id/block", ":id/block"] {
            let route = RouterPath(stringLiteral: path)
            users.post(route) { _, context in try await block(context, true) }
            users.delete(route) { _, context in try await block(context, false) }
        }

        for group in [users.group("devices"), api.group("notifications/devices")] {
            group.post { request, context in
                let claims = try context.caller()
                let body = try await BodyDecoding.decode(UserDirectory.PushRegistration.self, from: request, limit: deps.maxBodySize)
                let dto = try await directory.registerPush((claims.userID, claims.deviceNumber, claims.deviceID), body)
                return try Envelope.ok(dto, status: .created)
            }
            group.delete(":token") { _, context in
                let token = try context.parameters.require("token")
                try await directory.removePush(try context.caller().userID, token: token)
                return Envelope.noContent()
            }
        }

        users.get(":id") { _, context in
            try Envelope.ok(try await directory.profile(of: try userID(context), viewer: try context.caller().userID))
        }
        users.get(":id/presence") { _, context in
            try Envelope.ok(try await directory.presence(of: try userID(context), viewer: try context.caller().userID))
        }
    }

    private func updateMe(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await BodyDecoding.decode(UserDirectory.ProfileUpdate.self, from: request, limit: deps.maxBodySize)
        return try Envelope.ok(try await directory.updateProfile(try context.caller().userID, body))
    }

    /// The seed answers privacy PUT with 204; PATCH returns the new settings.
    private func updatePrivacy(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await BodyDecoding.decode(UserDirectory.PrivacyUpdate.self, from: request, limit: deps.maxBodySize)
        let dto = try await directory.updatePrivacy(try context.caller().userID, body)
        return request.method == .patch ? try Envelope.ok(dto) : Envelope.noContent()
    }

    private func block(_ context: TernRequestContext, _ blocked: Bool) async throws -> Response {
        try await directory.setBlocked(try context.caller().userID, target: try userID(context), blocked: blocked)
        return Envelope.noContent()
    }

    private func userID(_ context: TernRequestContext) throws -> TernID {
        let raw = try context.parameters.require("id")
        guard let id = TernID(raw) else { throw TernError.validation("user id must be a UUID") }
        return id
    }
}
