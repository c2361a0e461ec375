import Hummingbird
import TernAuth
import TernCore

/// `/api/v1/auth/*`: request-otp, verify-otp, refresh, logout (and the seed's aliases).
struct AuthRoutes {
    let deps: APIDependencies

    private struct OTPRequest: Decodable {
        var phone: String?
    }

    private struct VerifyRequest: Decodable {
        var phone: String?
        var code: String?
        var otp: String?
        var deviceID: String?
        var deviceName: String?
        var platform: String?

        enum CodingKeys: String, CodingKey {
            case phone, code, otp, platform
            case deviceID = "device_id"
            case deviceName = "device_name"
        }
    }

    private struct RefreshRequest: Decodable {
        var refreshToken: String?

        enum CodingKeys: String, CodingKey {
            case refreshToken = "refresh_token"
        }
    }

    func register(on group: RouterGroup<TernRequestContext>) {
        for path in ["request-otp", "otp/send"] {
            group.post(RouterPath(stringLiteral: path)) { request, context in try await requestOTP(request, context) }
        }
        for path in ["verify-otp", "otp/verify"] {
            group.post(RouterPath(stringLiteral: path)) { request, context in try await verifyOTP(request, context) }
        }
        for path in ["refresh", "token/refresh"] {
            group.post(RouterPath(stringLiteral: path)) { request, context in try await refresh(request, context) }
        }
        group.post("logout") { request, context in try await logout(request, context) }
    }

    private func requestOTP(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await BodyDecoding.decode(OTPRequest.self, from: request, limit: deps.maxBodySize)
        guard let phone = body.phone, !phone.isEmpty else { throw TernError.validation("phone is required") }
        let code = try await deps.auth.requestCode(phone: phone, clientIP: context.clientIP)
        return try Envelope.ok(
            OTPSentDTO(
                message: "OTP sent successfully", expiresInSeconds: deps.auth.settings.otpTTL.wholeSeconds,
                otp: deps.echoOTP ? code : nil))
    }

    private func verifyOTP(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await BodyDecoding.decode(VerifyRequest.self, from: request, limit: deps.maxBodySize)
        guard let phone = body.phone, !phone.isEmpty else { throw TernError.validation("phone is required") }
        guard let code = body.code ?? body.otp, !code.isEmpty else { throw TernError.badRequest("code is required") }
        let grant = try await deps.auth.verifyCode(
            phone: phone, code: code,
            device: DeviceInfo(clientID: body.deviceID, name: body.deviceName, platform: body.platform))
        let ttl = grant.accessExpiresIn.wholeSeconds
        return try Envelope.ok(
            LoginDTO(
                tokens: TokenPairDTO(accessToken: grant.accessToken, refreshToken: grant.refreshToken, expiresIn: ttl, expiresInSeconds: ttl),
                user: UserDTO(own: grant.user), isNewUser: grant.isNewUser, deviceID: grant.device.clientID,
                sessionID: grant.session.id.description))
    }

    private func refresh(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await BodyDecoding.decode(RefreshRequest.self, from: request, limit: deps.maxBodySize)
        guard let token = body.refreshToken, !token.isEmpty else { throw TernError.validation("refresh_token is required") }
        let pair = try await deps.auth.refresh(token: token)
        let ttl = pair.accessExpiresIn.wholeSeconds
        return try Envelope.ok(
            TokenPairDTO(accessToken: pair.accessToken, refreshToken: pair.refreshToken, expiresIn: ttl, expiresInSeconds: ttl))
    }

    /// Works with a refresh token in the body (the seed), with only a bearer token (the
    /// Android app logs out without a body), or both.
    private func logout(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await BodyDecoding.decodeIfPresent(RefreshRequest.self, from: request, limit: deps.maxBodySize)
        var claims: AccessClaims?
        if let bearer = AuthMiddleware.bearer(request) {
            claims = try? deps.auth.tokens.verify(bearer)
        }
        let refresh = body?.refreshToken.flatMap { $0.isEmpty ? nil : $0 }
        if refresh == nil && claims == nil {
            throw TernError.validation("give refresh_token in the body or a valid Authorization: Bearer token")
        }
        try await deps.auth.logout(refreshToken: refresh, claims: claims)
        return try Envelope.ok(MessageDTO(message: "logged out successfully"))
    }
}
