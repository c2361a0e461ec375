import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TernCore

/// The response envelope of every JSON route: `{"success": true, "data": …}` or
/// `{"success": false, "error": {"code", "message", "request_id"}}`.
enum Envelope {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let jsonContentType = "application/json; charset=utf-8"

    private struct Success<T: Encodable>: Encodable {
        let success = true
        let data: T
    }

    /// A success response carrying `data`.
    static func ok<T: Encodable>(_ data: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let body = try encoder.encode(Success(data: data))
        return Response(
            status: status, headers: [.contentType: jsonContentType],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// A success response around `data`, already serialised JSON.
    static func ok(raw data: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        var body = ByteBuffer()
        body.reserveCapacity(data.count + 32)
        body.writeString(#"{"success":true,"data":"#)
        body.writeBytes(data)
        body.writeString("}")
        return Response(status: status, headers: [.contentType: jsonContentType], body: .init(byteBuffer: body))
    }

    /// 204 No Content (the seed's status for block, privacy PUT, device DELETE, …).
    static func noContent() -> Response { Response(status: .noContent) }

    /// Raw JSON bytes as the response (for the health routes' fixed shapes).
    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) throws -> Response {
        let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: status, headers: [.contentType: jsonContentType], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// An error rendered in the envelope; the only error type that leaves the API's error
/// middleware.
struct EnvelopeError: HTTPResponseError {
    let error: TernError
    let requestID: String
    var extraHeaders: HTTPFields = [:]

    var status: HTTPResponse.Status { HTTPResponse.Status(code: error.status) }

    private struct Body: Encodable {
        struct Detail: Encodable {
            let code: String
            let message: String
            let requestID: String

            enum CodingKeys: String, CodingKey {
                case code, message
                case requestID = "request_id"
            }
        }

        let success = false
        let error: Detail
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try Envelope.encoder.encode(
            Body(error: .init(code: error.code.rawValue, message: error.message, requestID: requestID)))
        var headers: HTTPFields = [.contentType: Envelope.jsonContentType]
        if let retry = error.retryAfter { headers[.retryAfter] = String(retry) }
        headers.append(contentsOf: extraHeaders)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
