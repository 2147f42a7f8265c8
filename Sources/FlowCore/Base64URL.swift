import FlowProtocol

/// Base64url without padding (RFC 4648 §5), as cursors use it.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var group = UInt32(0)
            for (offset, byte) in chunk.enumerated() { group |= UInt32(byte) << (16 - 8 * offset) }
            for position in 0...chunk.count { output.append(Self.alphabet[Int(group >> (18 - 6 * position)) & 0x3F]) }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(digits.count * 3 / 4)
        var group = UInt32(0)
        var bits = 0
        for digit in digits {
            let value: UInt8
            switch digit {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = digit - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = digit - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = digit - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "_"): value = 63
            default: return nil
            }
            group = group << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: group >> UInt32(bits)))
            }
        }
        return output
    }
}

/// A LIST cursor's text (SPEC §7.2: opaque to clients), the same for every store: the last
/// row's sort key and seq, as base64url JSON `[{"i"|"d"|"s"|"b": key}, seq]`.
public struct ListCursor: Sendable, Equatable {
    /// A sort key as SQLite orders them: numbers before text before a missing or null value.
    public enum Key: Sendable, Equatable {
        case integer(Int64)
        case double(Double)
        case text(String)
        /// A missing or null value (and nothing else), which sorts after every value.
        case missing
    }

    public let key: Key
    public let seq: Int64

    public init(key: Key, seq: Int64) {
        self.key = key
        self.seq = seq
    }

    public var text: String {
        let key: JSONValue
        switch self.key {
        case .missing: key = ["b": true]
        case .integer(let integer): key = ["i": .integer(integer)]
        case .double(let double): key = ["d": .number(double)]
        case .text(let string): key = ["s": .string(string)]
        }
        return Base64URL.encode(JSONValue.array([key, .integer(self.seq)]).encoded())
    }

    public init?(text: String) {
        guard let bytes = Base64URL.decode(text), let value = try? JSONValue(parsing: bytes),
            case .array(let parts) = value, parts.count == 2, case .integer(let seq) = parts[1], case .object(let key) = parts[0]
        else { return nil }
        switch (key["i"], key["d"], key["s"], key["b"]) {
        case (.integer(let integer)?, _, _, _): self.key = .integer(integer)
        case (_, .number(let double)?, _, _) where double.isFinite: self.key = .double(double)
        case (_, .integer(let integer)?, _, _): self.key = .double(Double(integer))
        case (_, _, .string(let string)?, _): self.key = .text(string)
        case (_, _, _, .bool(true)?): self.key = .missing
        default: return nil
        }
        self.seq = seq
    }
}
