/// Writes JSON text into a byte array. Compact, keys in stored order, so one value always
/// encodes to the same bytes.
public struct JSONWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// A writer with room for `capacity` bytes before it grows.
    public init(capacity: Int = 256) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    /// Appends bytes that are already JSON text (or punctuation) unchanged.
    public mutating func writeRaw(_ raw: StaticString) {
        raw.withUTF8Buffer { self.bytes.append(contentsOf: $0) }
    }

    /// Appends text that is already valid JSON, unchanged.
    public mutating func write(encoded text: String) {
        var text = text
        text.withUTF8 { self.bytes.append(contentsOf: $0) }
    }

    /// Appends the JSON text of `value`.
    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: self.writeRaw("null")
        case .bool(let bool): bool ? self.writeRaw("true") : self.writeRaw("false")
        case .integer(let integer): self.write(integer: integer)
        case .number(let number): self.write(number: number)
        case .string(let string): self.write(string: string)
        case .array(let array):
            self.bytes.append(UInt8(ascii: "["))
            for (offset, element) in array.enumerated() {
                if offset > 0 { self.bytes.append(UInt8(ascii: ",")) }
                self.write(element)
            }
            self.bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            self.bytes.append(UInt8(ascii: "{"))
            var first = true
            for (key, element) in object {
                if !first { self.bytes.append(UInt8(ascii: ",")) }
                first = false
                self.write(string: key)
                self.bytes.append(UInt8(ascii: ":"))
                self.write(element)
            }
            self.bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Appends an integer.
    public mutating func write(integer: Int64) {
        if integer >= 0 && integer < 10 {
            self.bytes.append(UInt8(ascii: "0") + UInt8(integer))
        } else {
            self.bytes.append(contentsOf: String(integer).utf8)
        }
    }

    /// Appends a number; JSON has no NaN or infinity, so those are written as `null`.
    public mutating func write(number: Double) {
        guard number.isFinite else { return self.writeRaw("null") }
        if number == number.rounded(.towardZero), abs(number) < 1e15 {
            self.write(integer: Int64(number))
            self.writeRaw(".0")
        } else {
            self.bytes.append(contentsOf: number.description.utf8)
        }
    }

    /// Appends a string with the escapes JSON requires (quote, backslash, control characters).
    public mutating func write(string: String) {
        self.bytes.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                runStart = index + 1
                self.writeEscape(byte)
            }
            if runStart < utf8.count { self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        self.bytes.append(UInt8(ascii: "\""))
    }

    private mutating func writeEscape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): self.writeRaw("\\\"")
        case UInt8(ascii: "\\"): self.writeRaw("\\\\")
        case 0x0A: self.writeRaw("\\n")
        case 0x0D: self.writeRaw("\\r")
        case 0x09: self.writeRaw("\\t")
        case 0x08: self.writeRaw("\\b")
        case 0x0C: self.writeRaw("\\f")
        default:
            self.writeRaw("\\u00")
            self.bytes.append(Self.hexDigit(byte >> 4))
            self.bytes.append(Self.hexDigit(byte & 0xF))
        }
    }
}

extension JSONWriter {
    fileprivate static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

extension JSONValue {
    /// The compact JSON text of this value as UTF-8 bytes.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter()
        writer.write(self)
        return writer.bytes
    }
}
