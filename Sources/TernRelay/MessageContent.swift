import TernCore
import TernStore
import TernWire

/// Limits on message content (SEED-API weakness 12: the seed had none).
public enum MessageLimits {
    /// Text body, in characters (the seed's HLD: 4096).
    public static let bodyMax = 4096
    /// Media caption, in characters.
    public static let captionMax = 1024
    /// A client's message id: opaque, 1–128 characters of `A-Za-z0-9._:-`.
    public static let clientMsgIDMax = 128
    /// File names of documents.
    public static let fileNameMax = 255
    /// Media ids (checked against the blob store once media lands).
    public static let mediaIDMax = 128
    /// Phone numbers on a contact card.
    public static let contactPhonesMax = 10
    /// Names on contact cards and places.
    public static let nameMax = 100
    /// Addresses of places.
    public static let addressMax = 500
}

/// The kinds of message Tern accepts.
public enum MessageKind: String, Sendable, CaseIterable {
    case text, image, video, audio, document, location, contact
}

/// A validated message: its kind and its payload in canonical form (only known fields,
/// checked types and limits), ready to store and forward.
public struct MessageContent: Sendable, Equatable {
    public var kind: MessageKind
    /// Canonical payload JSON object bytes.
    public var payload: [UInt8]
    /// Plain text for previews: the body, caption, or place/contact name.
    public var previewText: String
    /// The uploaded media an image/video/audio/document message refers to.
    public var mediaID: TernID?

    /// Validates `type` and `payload` from a client. Errors are 400 VALIDATION_ERROR naming
    /// the field.
    public static func validate(type: String?, payload: JSON?) throws(TernError) -> MessageContent {
        let kind = try Self.kind(type)
        guard let payload, case .object(let p) = payload else { throw .validation("payload must be an object") }
        return try validate(kind: kind, payload: p)
    }

    /// The kind named by `type`; errors name the field.
    static func kind(_ type: String?) throws(TernError) -> MessageKind {
        guard let type else { throw .validation("type is required") }
        guard let kind = MessageKind(rawValue: type) else {
            throw .validation("type must be one of " + MessageKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return kind
    }

    /// Validates the payload object `p` of a `kind` message.
    static func validate(kind: MessageKind, payload p: some JSONFields) throws(TernError) -> MessageContent {
        let type = kind.rawValue
        var w = JSONWriter(capacity: 512)  // one allocation for the usual payload
        w.beginObject()
        var preview = ""
        var mediaID: TernID?

        func text(_ key: String, max: Int, required: Bool, multiline: Bool = true) throws(TernError) -> String? {
            guard let value = p[key], !value.isNull else {
                if required { throw .validation("payload.\(key) is required for \(type) messages") }
                return nil
            }
            guard let s = value.stringValue else { throw .validation("payload.\(key) must be a string") }
            try Validate.text(s, field: "payload.\(key)", max: max, allowEmpty: !required, multiline: multiline)
            return s
        }
        func number(_ keys: [String], required: Bool) throws(TernError) -> Double? {
            for key in keys {
                guard let value = p[key], !value.isNull else { continue }
                guard let d = value.doubleValue else { throw .validation("payload.\(key) must be a number") }
                return d
            }
            if required { throw .validation("payload.\(keys[0]) is required for \(type) messages") }
            return nil
        }

        switch kind {
        case .text:
            let body = try text("body", max: MessageLimits.bodyMax, required: true)!
            w.member("body", body)
            preview = body
        case .image, .video, .audio, .document:
            let media = try text("media_id", max: MessageLimits.mediaIDMax, required: true, multiline: false)!
            guard let id = TernID(media) else { throw .validation("payload.media_id must be the media_id of an upload") }
            mediaID = id
            w.member("media_id", id.description)
            if let caption = try text("caption", max: MessageLimits.captionMax, required: false) {
                w.member("caption", caption)
                preview = caption
            }
            var fileName = try text("filename", max: MessageLimits.fileNameMax, required: false, multiline: false)
            if fileName == nil {
                fileName = try text("file_name", max: MessageLimits.fileNameMax, required: false, multiline: false)
            }
            if let name = fileName {
                w.member("filename", name)
                w.member("file_name", name)
            }
            if let duration = try number(["duration_ms", "duration"], required: false) {
                guard duration >= 0, duration <= 86_400_000 else { throw .validation("payload.duration_ms must be between 0 and 86400000") }
                w.key("duration_ms")
                w.int(Int64(duration))
            }
            if let mime = try text("mime_type", max: 100, required: false, multiline: false) { w.member("mime_type", mime) }
        case .location:
            guard let lat = try number(["latitude", "lat"], required: true), let lng = try number(["longitude", "lng"], required: true) else {
                throw .validation("payload.latitude and payload.longitude are required")
            }
            guard (-90...90).contains(lat) else { throw .validation("payload.latitude must be between -90 and 90") }
            guard (-180...180).contains(lng) else { throw .validation("payload.longitude must be between -180 and 180") }
            w.key("latitude")
            w.double(lat)
            w.key("longitude")
            w.double(lng)
            if let name = try text("name", max: MessageLimits.nameMax, required: false, multiline: false) {
                w.member("name", name)
                preview = name
            }
            if let address = try text("address", max: MessageLimits.addressMax, required: false) { w.member("address", address) }
            if let body = try text("body", max: MessageLimits.bodyMax, required: false) { w.member("body", body) }
        case .contact:
            let name = try text("name", max: MessageLimits.nameMax, required: true, multiline: false)!
            w.member("name", name)
            preview = name
            var phones: [String] = []
            if let list = p["phones"] ?? p["phone_numbers"] {
                guard let items = list.arrayValue else { throw .validation("payload.phones must be an array of strings") }
                for item in items {
                    guard let s = item.stringValue else { throw .validation("payload.phones must be an array of strings") }
                    phones.append(s)
                }
            } else if let single = try text("phone", max: 32, required: false, multiline: false) {
                phones = [single]
            }
            guard !phones.isEmpty else { throw .validation("payload.phones is required for contact messages") }
            guard phones.count <= MessageLimits.contactPhonesMax else {
                throw .validation("payload.phones may list at most \(MessageLimits.contactPhonesMax) numbers")
            }
            w.key("phones")
            w.beginArray()
            for phone in phones {
                guard let normalized = Validate.normalizedPhone(phone) else {
                    throw .validation("payload.phones must hold phone numbers in E.164 form")
                }
                w.string(normalized)
            }
            w.endArray()
        }
        w.endObject()
        if preview.isEmpty { preview = "[\(kind.rawValue)]" }
        return MessageContent(kind: kind, payload: w.bytes, previewText: preview, mediaID: mediaID)
    }
}

/// A `message.send` (WebSocket) or `POST /messages` (REST) request, validated.
public struct SendCommand: Sendable {
    public var chat: TernID
    public var clientMsgID: String
    public var content: MessageContent
    public var replyTo: MessageID?

    /// Validates the fields of a send; errors name the field.
    public static func parse(_ data: some JSONFields, chatOverride: TernID? = nil) throws(TernError) -> SendCommand {
        let chat: TernID
        if let chatOverride {
            chat = chatOverride
        } else {
            guard let parsed = data.withString("chat_id", { TernID(utf8: $0) }) else { throw .validation("chat_id is required") }
            guard let id = parsed else { throw .validation("chat_id must be a UUID") }
            chat = id
        }
        guard let cmid = data["client_msg_id"]?.stringValue else { throw .validation("client_msg_id is required") }
        try Validate.token(cmid, field: "client_msg_id", max: MessageLimits.clientMsgIDMax)
        let kind = try MessageContent.kind(data["type"]?.stringValue)
        guard let payload = data.fields("payload") else { throw .validation("payload must be an object") }
        let content = try MessageContent.validate(kind: kind, payload: payload)
        var replyTo: MessageID?
        if let raw = data["reply_to_message_id"], !raw.isNull {
            guard let s = raw.stringValue, let id = MessageID(s) else {
                throw .validation("reply_to_message_id is not a message id")
            }
            guard id.chat == chat else { throw .validation("reply_to_message_id must be a message of the same chat") }
            replyTo = id
        }
        return SendCommand(chat: chat, clientMsgID: cmid, content: content, replyTo: replyTo)
    }
}
