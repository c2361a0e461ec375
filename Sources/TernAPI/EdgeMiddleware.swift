import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import TernAuth
import TernCore
import TernStore

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-ID")!
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
}

/// The outermost middleware: request id, client IP, metrics, and the translation of every
/// error into the envelope — router misses (404), wrong methods (405), body and parameter
/// errors (400/413), typed domain and store errors, and anything unexpected (500, logged
/// with the request id, never shown to the client).
struct EdgeMiddleware: RouterMiddleware {
    typealias Context = TernRequestContext
    let trustForwardedFor: Bool
    let metrics: APIMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = Self.requestID(from: request.headers[.requestID])
        context.requestID = id
        context.clientIP = clientIP(request, context)
        context.logger[metadataKey: "http.request_id"] = .string(id)
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            var response = try await next(request, context)
            response.headers[.requestID] = id
            metrics.record(request, status: response.status.code, endpoint: context.endpointPath, start: start)
            return response
        } catch {
            let (tern, headers) = translate(error, request: request, context: context)
            if tern.status >= 500 {
                context.logger.error(
                    "request failed", metadata: ["http.path": "\(request.uri.path)", "http.error": "\(error)"])
            }
            metrics.errors(tern.code)
            metrics.record(request, status: tern.status, endpoint: context.endpointPath, start: start)
            var extra = headers
            extra[.requestID] = id
            throw EnvelopeError(error: tern, requestID: id, extraHeaders: extra)
        }
    }

    private func translate(_ error: any Error, request: Request, context: Context) -> (TernError, HTTPFields) {
        switch error {
        case let e as TernError:
            return (e, [:])
        case let e as StoreError:
            return (e.clientError, [:])
        case let e as EnvelopeError:
            return (e.error, e.extraHeaders)
        case is NIOTooManyBytesError:
            return (TernError(.payloadTooLarge, "request body too large"), [:])
        case let e as DecodingError:
            return (BodyDecoding.describe(e), [:])
        case let e as HTTPError:
            switch e.status {
            case .notFound:
                if context.endpointPath == "NotFound" {
                    return (TernError(.notFound, "no route for \(request.method.rawValue) \(request.uri.path)"), [:])
                }
                return (TernError(.notFound, e.body ?? "not found"), [:])
            case .methodNotAllowed:
                var headers: HTTPFields = [:]
                if let allow = e.headers[.allow] { headers[.allow] = allow }
                return (TernError(.methodNotAllowed, "\(request.method.rawValue) is not allowed on \(request.uri.path)"), headers)
            case .contentTooLarge:
                return (TernError(.payloadTooLarge, "request body too large"), [:])
            case .unauthorized:
                return (TernError.unauthorized(e.body ?? "authentication required"), [:])
            case .tooManyRequests:
                return (TernError(.tooManyRequests, e.body ?? "too many requests"), [:])
            default:
                if (400..<500).contains(e.status.code) {
                    return (TernError.badRequest(e.body ?? e.status.reasonPhrase), [:])
                }
                return (TernError(.internalError, "internal error (request \(context.requestID))"), [:])
            }
        case is CancellationError:
            return (TernError(.shuttingDown, "the server is shutting down; try again shortly", retryAfter: 5), [:])
        default:
            return (TernError(.internalError, "internal error (request \(context.requestID))"), [:])
        }
    }

    private func clientIP(_ request: Request, _ context: Context) -> String {
        if trustForwardedFor, let forwarded = request.headers[.forwardedFor] {
            let first = forwarded.split(separator: ",").first.map { String($0).trimmingWhitespace() } ?? ""
            if !first.isEmpty && first.utf8.count <= 64 { return first }
        }
        return context.remoteAddress?.ipAddress ?? "unknown"
    }

    /// The client's id if it is 1–128 characters of `A-Za-z0-9._:-`, else a fresh one.
    static func requestID(from header: String?) -> String {
        if let header, (try? Validate.token(header, field: "X-Request-ID", max: 128)) != nil {
            return header
        }
        return String(TernID.random().description.filter { $0 != "-" }.prefix(20))
    }
}

/// HTTP metrics (names in docs/operations.md). Labels are bounded: method, route pattern,
/// status class; never user ids.
final class APIMetrics: Sendable {
    func record(_ request: Request, status: Int, endpoint: String?, start: UInt64) {
        let route = endpoint ?? "unknown"
        let dims = [("method", request.method.rawValue), ("route", route), ("status", "\(status / 100)xx")]
        Metrics.Counter(label: "tern_http_requests_total", dimensions: dims).increment()
        Metrics.Timer(label: "tern_http_request_duration_seconds", dimensions: [("route", route)])
            .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
    }

    func errors(_ code: ErrorCode) {
        Metrics.Counter(label: "tern_http_errors_total", dimensions: [("code", code.rawValue)]).increment()
    }

    func rateLimited(_ scope: String) {
        Metrics.Counter(label: "tern_http_rate_limited_total", dimensions: [("scope", scope)]).increment()
    }
}
