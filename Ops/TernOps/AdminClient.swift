import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TernConfig

/// Calls the server's admin API (the CLI's write commands: the single-writer rule means
/// the CLI never writes to the store itself).
public struct AdminClient: Sendable {
    public var baseURL: String
    public var token: String

    public init(baseURL: String, token: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
    }

    /// The admin endpoint and token from the flags, else the configuration: `admin.host` and
    /// `admin.port`, and `admin.token` or the token file the server generated in the data
    /// folder.
    public static func resolve(_ configuration: TernConfiguration, url: String?, token: String?) throws -> AdminClient {
        let base: String
        if let url {
            base = url
        } else {
            guard configuration.adminEnabled else {
                throw OpsError("the admin listener is off (admin.port = -1); pass --admin-url")
            }
            let host = configuration.adminHost == "0.0.0.0" ? "127.0.0.1" : configuration.adminHost
            base = "http://\(host.contains(":") ? "[\(host)]" : host):\(configuration.adminPort)"
        }
        var secret = token ?? configuration.adminToken
        if secret.isEmpty {
            guard let data = FileManager.default.contents(atPath: configuration.adminTokenPath) else {
                throw OpsError("no admin token: set admin.token (or TERN_ADMIN_TOKEN), or run where \(configuration.adminTokenPath) is readable")
            }
            secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return AdminClient(baseURL: base, token: secret)
    }

    /// POSTs to `path` (below `/admin/v1/`) and returns the envelope's `data`.
    public func post(_ path: String) async throws -> [String: Any] {
        try await call(.POST, path)
    }

    public func get(_ path: String) async throws -> [String: Any] {
        try await call(.GET, path)
    }

    private func call(_ method: HTTPMethod, _ path: String) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: "\(baseURL)/admin/v1/\(path)")
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw OpsError("cannot reach the admin API at \(baseURL) (is the server running? admin.host/admin.port): \(error)")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        guard (200..<300).contains(Int(response.status.code)), let object, object["success"] as? Bool == true else {
            let error = object?["error"] as? [String: Any]
            let code = error?["code"] as? String ?? "HTTP_\(response.status.code)"
            let message = error?["message"] as? String ?? String(buffer: body)
            throw OpsError("admin API refused: \(code): \(message) (HTTP \(response.status.code))")
        }
        return object["data"] as? [String: Any] ?? [:]
    }
}
