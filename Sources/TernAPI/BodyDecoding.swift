import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TernCore
import TernWire

/// Reads JSON request bodies with the configured size limit and turns every decoding
/// failure into a 400 that names the field.
enum BodyDecoding {
    /// Decodes the body as `T`. Missing body → 400; over `limit` → 413; wrong JSON → 400.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw TernError(.payloadTooLarge, "request body is \(length) bytes; the limit is \(limit)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw TernError(.payloadTooLarge, "request body is larger than \(limit) bytes")
        }
        guard buffer.readableBytes > 0 else { throw TernError.badRequest("request body must be a JSON object") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: buffer))
        } catch let error as DecodingError {
            throw describe(error)
        }
    }

    /// Reads the body as a JSON object with Tern's strict parser (for routes that take
    /// free-form payloads). Missing body → 400; over `limit` → 413; not an object → 400.
    static func object(from request: Request, limit: Int) async throws -> [String: JSON] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw TernError(.payloadTooLarge, "request body is \(length) bytes; the limit is \(limit)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw TernError(.payloadTooLarge, "request body is larger than \(limit) bytes")
        }
        guard buffer.readableBytes > 0 else { throw TernError.badRequest("request body must be a JSON object") }
        let value: JSON
        do {
            value = try JSONParser.parse(buffer.readableBytesView)
        } catch {
            throw TernError.badRequest("request body is not valid JSON: \(error)")
        }
        guard case .object(let members) = value else { throw TernError.badRequest("request body must be a JSON object") }
        return members
    }

    /// Decodes an optional body: empty → nil.
    static func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T? {
        if let length = request.headers[.contentLength].flatMap(Int.init), length == 0 { return nil }
        let buffer = try await request.body.collect(upTo: limit)
        if buffer.readableBytes == 0 { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: buffer))
        } catch let error as DecodingError {
            throw describe(error)
        }
    }

    /// A 400 naming what was wrong, without echoing the body.
    static func describe(_ error: DecodingError) -> TernError {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "body" : p
        }
        switch error {
        case .typeMismatch(let type, let context):
            return .badRequest("\(path(context)) has the wrong type (expected \(describe(type)))")
        case .valueNotFound(let type, let context):
            return .badRequest("\(path(context)) must not be null (expected \(describe(type)))")
        case .keyNotFound(let key, _):
            return .badRequest("\(key.stringValue) is required")
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? .badRequest("request body is not valid JSON")
                : .badRequest("\(path(context)) is malformed")
        @unknown default:
            return .badRequest("request body could not be read")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Int64.Type, is UInt64.Type: "an integer"
        case is Double.Type: "a number"
        case is [String].Type: "an array of strings"
        default: "\(type)"
        }
    }
}
