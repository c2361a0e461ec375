/// Field limits of the client contract, each with its reason. Exceeding one is a 400
/// `VALIDATION_ERROR` naming the field, never a truncation and never a 500.
public enum Limits {
    /// E.164 allows at most 15 digits after the `+`.
    public static let phoneDigitsMax = 15
    /// The seed's `users.display_name VARCHAR(100)`.
    public static let displayNameMax = 100
    /// The seed's `users.status_text VARCHAR(500)` ("about").
    public static let statusTextMax = 500
    /// Long enough for any CDN URL with a signature; short enough to keep records small.
    public static let avatarURLMax = 1024
    /// The seed's `contacts.nickname VARCHAR(100)`.
    public static let nicknameMax = 100
    /// A phone's own name for itself ("Pixel 8 of Ana").
    public static let deviceNameMax = 100
    /// Client-chosen device ids are opaque install ids (UUIDs, Android ids); 128 covers all.
    public static let deviceIDMax = 128
    /// FCM registration tokens are ~160 bytes, APNs 64 hex chars; the store key must stay
    /// under LMDB's 511-byte key limit together with a 16-byte user id.
    public static let pushTokenMax = 480
    /// The seed's `groups.name VARCHAR(100)`.
    public static let groupNameMax = 100
    /// The seed stored TEXT; its PRD says 512, WhatsApp allows 512.
    public static let groupDescriptionMax = 512
    /// Contacts per sync request (the seed's limit).
    public static let contactSyncMax = 1000
    /// Status text default, as the seed's database default.
    public static let defaultStatusText = "Hey there! I am using WhatsApp."
}

/// Input rules shared by the API and the store.
public enum Validate {
    /// A phone number in strict E.164 form (`+` then 2–15 digits, no leading zero).
    public static func isE164(_ phone: String) -> Bool {
        let u = Array(phone.utf8)
        guard u.count >= 3, u.count <= Limits.phoneDigitsMax + 1, u[0] == UInt8(ascii: "+") else { return false }
        guard u[1] >= UInt8(ascii: "1") && u[1] <= UInt8(ascii: "9") else { return false }
        return u.dropFirst().allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// An address-book number with the usual separators removed (spaces, dashes, dots,
    /// parentheses), if what remains is E.164; nil otherwise.
    public static func normalizedPhone(_ raw: String) -> String? {
        let kept = raw.unicodeScalars.filter { !" -.()\u{00A0}".unicodeScalars.contains($0) }
        let phone = String(String.UnicodeScalarView(kept))
        return isE164(phone) ? phone : nil
    }

    /// Checks a human-entered text field: length in characters and no control characters
    /// (newlines allowed only where `multiline`).
    public static func text(_ value: String, field: String, max: Int, allowEmpty: Bool = true, multiline: Bool = false) throws(TernError) {
        // Fast path for ASCII (most message bodies): characters are bytes, controls are < 0x20.
        var ascii = true
        var blank = true
        var control = false
        var pairs = 0
        var text = value
        text.withUTF8 { utf8 in
            for byte in utf8 where byte != 0x20 && byte != 0x0A && byte != 0x09 && byte != 0x0D {
                blank = false
                break
            }
            let count = utf8.count
            var index = 0
            while index < count {
                // Eight bytes at a time past plain ASCII; a word that may hold a non-ASCII,
                // control or DEL byte (and the last partial word) is looked at bytewise.
                index = WordScan.skip(UnsafeRawBufferPointer(utf8), from: index, stops: [.controls, .delete, .nonASCII])
                let end = min(index + 8, count)
                for at in index..<end {
                    let byte = utf8[at]
                    if byte >= 0x80 {
                        ascii = false
                        return
                    }
                    if byte < 0x20 || byte == 0x7F {
                        if !(multiline && (byte == 0x0A || byte == 0x09)) { control = true }
                        // "\r\n" is one character.
                        if byte == 0x0D && at + 1 < count && utf8[at + 1] == 0x0A { pairs += 1 }
                    }
                }
                index = end
            }
        }
        if ascii {
            if !allowEmpty && blank { throw .validation("\(field) must not be empty") }
            if value.utf8.count - pairs > max { throw .validation("\(field) must be at most \(max) characters") }
            if control { throw .validation("\(field) must not contain control characters") }
            return
        }
        if !allowEmpty && value.trimmingWhitespace().isEmpty {
            throw .validation("\(field) must not be empty")
        }
        if value.count > max {
            throw .validation("\(field) must be at most \(max) characters")
        }
        for scalar in value.unicodeScalars where scalar.properties.generalCategory == .control {
            if multiline && (scalar == "\n" || scalar == "\t") { continue }
            throw .validation("\(field) must not contain control characters")
        }
    }

    /// An absolute http(s) URL without whitespace, or an empty string (clears the field).
    public static func url(_ value: String, field: String, max: Int) throws(TernError) {
        if value.isEmpty { return }
        if value.utf8.count > max { throw .validation("\(field) must be at most \(max) bytes") }
        let lower = value.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://") || value.hasPrefix("/") else {
            throw .validation("\(field) must be an http(s) URL or an absolute path")
        }
        if value.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control }) {
            throw .validation("\(field) must not contain whitespace")
        }
    }

    /// A client-chosen identifier: 1...max of `A-Z a-z 0-9 . _ : -`.
    public static func token(_ value: String, field: String, max: Int) throws(TernError) {
        let u = value.utf8
        guard !u.isEmpty, u.count <= max else { throw .validation("\(field) must be 1 to \(max) characters") }
        for c in u {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: ":"), UInt8(ascii: "-"):
                continue
            default:
                throw .validation("\(field) may contain only letters, digits and . _ : -")
            }
        }
    }
}

extension String {
    /// The string without leading and trailing whitespace (no Foundation needed).
    public func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
