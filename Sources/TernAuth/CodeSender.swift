import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import TernCore

/// Delivers a one-time login code to a phone.
public protocol CodeSender: Sendable {
    /// Sends `code` for `phone`; throws if the code could not be handed over.
    func send(code: String, to phone: String, expiresIn: Duration) async throws
}

/// Prints the code in the server log: the default, so that a newcomer can log in without
/// an SMS gateway. Not for production (anyone with the log can log in as anyone).
public struct LogCodeSender: CodeSender {
    private let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func send(code: String, to phone: String, expiresIn: Duration) async throws {
        logger.notice(
            "login code for \(phone): \(code) (valid \(expiresIn.wholeSeconds / 60) min; auth.otp_sender=log prints codes here, use webhook in production)"
        )
    }
}

/// POSTs the code as JSON to an SMS gateway (or anything else that speaks HTTP):
/// `{"phone": "+14155550123", "code": "123456", "message": "…", "expires_in_seconds": 300}`
/// with an optional `Authorization: Bearer <auth.webhook_token>`. Any 2xx is success.
public struct WebhookCodeSender: CodeSender {
    private let url: String
    private let bearer: String?
    private let client: HTTPClient
    private let timeout: Duration

    public init(url: String, bearer: String?, client: HTTPClient, timeout: Duration = .seconds(10)) {
        self.url = url
        self.bearer = bearer
        self.client = client
        self.timeout = timeout
    }

    public func send(code: String, to phone: String, expiresIn: Duration) async throws {
        let body: [String: Any] = [
            "phone": phone,
            "code": code,
            "message": "Your Tern code is \(code). It expires in \(expiresIn.wholeSeconds / 60) minutes.",
            "expires_in_seconds": expiresIn.wholeSeconds,
        ]
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "tern")
        if let bearer, !bearer.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
        let response = try await client.execute(request, timeout: .milliseconds(timeout.wholeMilliseconds))
        _ = try await response.body.collect(upTo: 64 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw TernError(.internalError, "code webhook answered HTTP \(response.status.code)")
        }
    }
}
