/// An endpoint's routing key: slash-separated lowercase segments such as `inventory/device`
/// (SPEC §1). Leading and trailing `/` are dropped, so `/inventory/device/` names the same endpoint.
public struct Namespace: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The normalised text, without leading or trailing `/`.
    public let rawValue: String

    /// At most this many segments.
    public static let maxSegments = 8
    /// At most this many characters.
    public static let maxLength = 200

    /// The namespace `text` names, or nil when it is not a valid namespace.
    public init?(_ text: some StringProtocol) {
        var utf8 = Substring(text).utf8[...]
        while utf8.first == UInt8(ascii: "/") { utf8 = utf8.dropFirst() }
        while utf8.last == UInt8(ascii: "/") { utf8 = utf8.dropLast() }
        guard !utf8.isEmpty, utf8.count <= Self.maxLength else { return nil }
        var segments = 1
        var atSegmentStart = true
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "/"):
                guard !atSegmentStart else { return nil }
                segments += 1
                atSegmentStart = true
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                atSegmentStart = false
            case UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                guard !atSegmentStart else { return nil }
            default:
                return nil
            }
        }
        guard segments <= Self.maxSegments else { return nil }
        self.rawValue = String(Substring(utf8))
    }

    /// The first segment: the application that owns the namespace by default.
    public var firstSegment: String {
        String(self.rawValue.split(separator: "/", maxSplits: 1).first!)
    }

    /// The segments, in order.
    public var segments: [Substring] { self.rawValue.split(separator: "/") }

    public var description: String { self.rawValue }

    public static func < (lhs: Namespace, rhs: Namespace) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The rules for an object id (SPEC §2): 1–200 characters, no control characters, no `/`.
public enum ObjectID {
    /// At most this many characters.
    public static let maxLength = 200

    /// Whether `text` is an acceptable object id.
    public static func isValid(_ text: String) -> Bool {
        var count = 0
        for scalar in text.unicodeScalars {
            count += 1
            if count > Self.maxLength { return false }
            switch scalar.value {
            case 0..<0x20, 0x7F..<0xA0, 0x2F: return false
            default: continue
            }
        }
        return count > 0
    }
}
