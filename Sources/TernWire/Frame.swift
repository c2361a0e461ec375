import TernCore

/// A frame from a client, in either shape the contract accepts: `{"event": E, "data": {…}}`
/// (the Android app) or `{"type": E, "payload": {…}}` (the seed's docs and tests), with an
/// optional `ref` that error frames echo.
public struct InboundFrame: Sendable, Equatable {
    public var event: String
    public var data: [String: JSON]
    public var ref: String?

    public init(event: String, data: [String: JSON], ref: String? = nil) {
        self.event = event
        self.data = data
        self.ref = ref
    }

    /// The client's reference for error frames: the frame `ref`, else `data.client_msg_id`.
    public var reference: String? { ref ?? data["client_msg_id"]?.stringValue }
}

/// Why a client frame was refused; each has a stable wire code.
public enum FrameError: Error, Sendable, Equatable {
    case invalidUTF8
    case malformedJSON(String)
    case notAnObject
    case missingEvent
    case badData(String)

    public var code: String {
        switch self {
        case .invalidUTF8: "INVALID_UTF8"
        case .malformedJSON: "MALFORMED_JSON"
        case .notAnObject, .missingEvent, .badData: "BAD_FRAME"
        }
    }

    public var message: String {
        switch self {
        case .invalidUTF8: "frame is not valid UTF-8"
        case .malformedJSON(let detail): "frame is not valid JSON: \(detail)"
        case .notAnObject: "frame must be a JSON object"
        case .missingEvent: "frame needs a string \"event\" (or \"type\")"
        case .badData(let detail): detail
        }
    }
}

extension InboundFrame {
    /// Parses a text frame's bytes.
    public static func parse(_ bytes: some Collection<UInt8>) throws(FrameError) -> InboundFrame {
        try parse(Array(bytes))
    }

    /// `parse` for an array, without a copy.
    public static func parse(_ bytes: [UInt8]) throws(FrameError) -> InboundFrame {
        let json: JSON
        do {
            json = try JSONParser.parse(bytes, maxDepth: 16)
        } catch let error {
            if case .invalidUTF8 = error { throw FrameError.invalidUTF8 }
            throw FrameError.malformedJSON(error.description)
        }
        guard case .object(let top) = json else { throw .notAnObject }
        let ref = top["ref"]?.stringValue ?? top["ref"]?.intValue.map { String($0) }
        guard let event = (top["event"] ?? top["type"])?.stringValue, !event.isEmpty, event.utf8.count <= 64 else {
            throw .missingEvent
        }
        let body = top["data"] ?? top["payload"]
        switch body {
        case nil, .null?:
            return InboundFrame(event: event, data: [:], ref: ref)
        case .object(let data)?:
            return InboundFrame(event: event, data: data, ref: ref)
        default:
            throw .badData("\"data\" must be an object")
        }
    }
}

/// Builds server frames: `{"event": E, "type": E[, "seq": N], "data": {…}}`. Both name keys
/// are sent so that clients of either shape can dispatch.
public enum OutboundFrame {
    /// A frame whose data is written by `body` into an open object.
    public static func make(_ event: String, seq: UInt64? = nil, capacity: Int = 160, _ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var w = JSONWriter(capacity: capacity)
        w.beginObject()
        w.member("event", event)
        w.member("type", event)
        if let seq {
            w.key("seq")
            w.uint(seq)
        }
        w.key("data")
        w.beginObject()
        body(&w)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    /// A frame around pre-serialised data (a stored mailbox entry). Every delivery goes
    /// through here, so the envelope is spliced byte by byte (event names are server
    /// constants that need no escaping; anything else takes the writer).
    public static func wrap(_ event: String, seq: UInt64?, data: [UInt8]) -> [UInt8] {
        guard StoredEnvelope.isPlain(event) else { return wrapEscaping(event, seq: seq, data: data) }
        var out = [UInt8]()
        out.reserveCapacity(data.count + 2 * event.utf8.count + 48)
        out.append(contentsOf: StoredEnvelope.eventKey)
        out.append(contentsOf: event.utf8)
        out.append(contentsOf: StoredEnvelope.typeKey)
        out.append(contentsOf: event.utf8)
        out.append(UInt8(ascii: "\""))
        if let seq {
            out.append(contentsOf: StoredEnvelope.seqKey)
            JSONWriter.appendDecimal(seq, to: &out)
        }
        out.append(contentsOf: StoredEnvelope.dataKey)
        out.append(contentsOf: data)
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static func wrapEscaping(_ event: String, seq: UInt64?, data: [UInt8]) -> [UInt8] {
        var w = JSONWriter(capacity: data.count + 80)
        w.beginObject()
        w.member("event", event)
        w.member("type", event)
        if let seq {
            w.key("seq")
            w.uint(seq)
        }
        w.key("data")
        w.raw(data)
        w.endObject()
        return w.bytes
    }

    /// `error` frame naming the problem and echoing the client's reference.
    public static func error(code: String, message: String, ref: String?) -> [UInt8] {
        make("error") { w in
            w.member("code", code)
            w.member("message", message)
            if let ref {
                w.member("ref", ref)
                w.member("client_msg_id", ref)
            }
        }
    }
}

/// The envelope of a frame around pre-serialised data, in the pieces `OutboundFrame.wrap`
/// splices together: `{"event":"` E `","type":"` E `"` [`,"seq":` N] `,"data":` DATA `}`.
/// The gateway writes the same pieces straight into its socket buffer.
public enum StoredEnvelope {
    public static let eventKey: [UInt8] = Array(#"{"event":""#.utf8)
    public static let typeKey: [UInt8] = Array(#"","type":""#.utf8)
    public static let seqKey: [UInt8] = Array(#","seq":"#.utf8)
    public static let dataKey: [UInt8] = Array(#","data":"#.utf8)

    /// Whether `event` can be spliced in as it is: no character JSON would escape (event
    /// names are server constants; anything else takes the JSON writer).
    public static func isPlain(_ event: String) -> Bool {
        var event = event
        return event.withUTF8 { isPlain(UnsafeRawBufferPointer($0)) }
    }

    /// `isPlain` on the name's UTF-8 bytes.
    public static func isPlain(_ event: UnsafeRawBufferPointer) -> Bool {
        for byte in event where byte < 0x20 || byte == 0x22 || byte == 0x5C { return false }
        return true
    }

    /// The length of `{"event":E,"type":E,"seq":N,"data":D}` for an event name of
    /// `eventCount` plain bytes and data of `dataCount` bytes.
    @inlinable
    public static func length(eventCount: Int, seq: UInt64, dataCount: Int) -> Int {
        // {"event":" E ","type":" E " ,"seq": N ,"data": D }
        10 + eventCount + 10 + eventCount + 1 + 7 + DecimalText.count(seq) + 8 + dataCount + 1
    }

    /// Writes that envelope at `p` (exactly `length(…)` bytes); `event` must be plain.
    public static func write(event: UnsafeRawBufferPointer, seq: UInt64, data: UnsafeRawBufferPointer, to p: UnsafeMutableRawPointer) -> Int {
        var at = p
        func put(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            at.copyMemory(from: base, byteCount: bytes.count)
            at += bytes.count
        }
        func put(_ text: StaticString) { put(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)) }
        put(#"{"event":""#)
        put(event)
        put(#"","type":""#)
        put(event)
        put(#"","seq":"#)
        let digits = DecimalText.count(seq)
        DecimalText.write(seq, digits: digits, to: at)
        at += digits
        put(#","data":"#)
        put(data)
        at.storeBytes(of: UInt8(ascii: "}"), as: UInt8.self)
        at += 1
        return at - p
    }
}
