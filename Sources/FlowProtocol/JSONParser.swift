import OrderedCollections

/// Why a text is not acceptable JSON.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Reason: Sendable, Equatable {
        case unexpectedEnd
        case unexpectedByte(UInt8)
        case invalidNumber
        case invalidEscape
        case invalidUTF8
        case controlCharacterInString
        case tooDeep(limit: Int)
        case trailingData
    }

    /// What went wrong.
    public let reason: Reason
    /// Byte offset in the input where it went wrong.
    public let offset: Int

    public init(reason: Reason, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String {
        switch self.reason {
        case .unexpectedEnd: "unexpected end of input"
        case .unexpectedByte(let byte):
            if byte >= 0x20 && byte < 0x7F {
                "unexpected character '\(Character(Unicode.Scalar(byte)))' at offset \(self.offset)"
            } else {
                "unexpected byte 0x\(String(byte, radix: 16)) at offset \(self.offset)"
            }
        case .invalidNumber: "invalid number at offset \(self.offset)"
        case .invalidEscape: "invalid escape sequence at offset \(self.offset)"
        case .invalidUTF8: "invalid UTF-8 at offset \(self.offset)"
        case .controlCharacterInString: "unescaped control character in string at offset \(self.offset)"
        case .tooDeep(let limit): "JSON nests deeper than \(limit) levels"
        case .trailingData: "unexpected data after the JSON value at offset \(self.offset)"
        }
    }
}

extension JSONValue {
    /// The default nesting limit (SPEC §11).
    public static let defaultMaxDepth = 64

    /// Parses one JSON text (RFC 8259), refusing anything that nests deeper than `maxDepth`
    /// arrays/objects, is not valid UTF-8, or has anything but whitespace after the value.
    public init(parsing bytes: UnsafeRawBufferPointer, maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONParseError) {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        self = try parser.parseDocument()
    }

    /// Parses one JSON text from a byte array; see ``init(parsing:maxDepth:)-(UnsafeRawBufferPointer,_)``.
    public init(parsing bytes: [UInt8], maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONParseError) {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw, maxDepth: maxDepth)
            do throws(JSONParseError) { return .success(try parser.parseDocument()) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    /// Parses one JSON text from a string.
    public init(parsing text: String, maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONParseError) {
        try self.init(parsing: Array(text.utf8), maxDepth: maxDepth)
    }
}

/// A strict, allocation-light recursive-descent JSON parser over raw bytes.
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    var index = 0
    var depth = 0

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        self.skipWhitespace()
        let value = try self.parseValue()
        self.skipWhitespace()
        guard self.index == self.bytes.count else { throw self.error(.trailingData) }
        return value
    }

    func error(_ reason: JSONParseError.Reason) -> JSONParseError {
        JSONParseError(reason: reason, offset: self.index)
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x0A, 0x0D, 0x09: self.index += 1
            default: return
            }
        }
    }

    @inline(__always)
    func peek() throws(JSONParseError) -> UInt8 {
        guard self.index < self.bytes.count else { throw self.error(.unexpectedEnd) }
        return self.bytes[self.index]
    }

    mutating func parseValue() throws(JSONParseError) -> JSONValue {
        switch try self.peek() {
        case UInt8(ascii: "{"): return try self.parseObject()
        case UInt8(ascii: "["): return try self.parseArray()
        case UInt8(ascii: "\""): return .string(try self.parseString())
        case UInt8(ascii: "t"): try self.expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try self.expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try self.expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try self.parseNumber()
        case let byte: throw self.error(.unexpectedByte(byte))
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw self.error(.unexpectedEnd) }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where self.bytes[self.index + offset] != expected[offset] {
            self.index += offset
            throw self.error(.unexpectedByte(self.bytes[self.index]))
        }
        self.index += count
    }

    mutating func enterContainer() throws(JSONParseError) {
        self.depth += 1
        guard self.depth <= self.maxDepth else { throw self.error(.tooDeep(limit: self.maxDepth)) }
        self.index += 1
    }

    mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try self.enterContainer()
        var object = JSONObject()
        self.skipWhitespace()
        if try self.peek() == UInt8(ascii: "}") {
            self.index += 1
            self.depth -= 1
            return .object(object)
        }
        while true {
            self.skipWhitespace()
            guard try self.peek() == UInt8(ascii: "\"") else { throw self.error(.unexpectedByte(self.bytes[self.index])) }
            let key = try self.parseString()
            self.skipWhitespace()
            guard try self.peek() == UInt8(ascii: ":") else { throw self.error(.unexpectedByte(self.bytes[self.index])) }
            self.index += 1
            self.skipWhitespace()
            object[key] = try self.parseValue()
            self.skipWhitespace()
            switch try self.peek() {
            case UInt8(ascii: ","): self.index += 1
            case UInt8(ascii: "}"):
                self.index += 1
                self.depth -= 1
                return .object(object)
            case let byte: throw self.error(.unexpectedByte(byte))
            }
        }
    }

    mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try self.enterContainer()
        var array: [JSONValue] = []
        self.skipWhitespace()
        if try self.peek() == UInt8(ascii: "]") {
            self.index += 1
            self.depth -= 1
            return .array(array)
        }
        while true {
            self.skipWhitespace()
            array.append(try self.parseValue())
            self.skipWhitespace()
            switch try self.peek() {
            case UInt8(ascii: ","): self.index += 1
            case UInt8(ascii: "]"):
                self.index += 1
                self.depth -= 1
                return .array(array)
            case let byte: throw self.error(.unexpectedByte(byte))
            }
        }
    }

    /// Parses a string starting at its opening quote. Strings without escapes are made
    /// straight from the input bytes (validated as UTF-8 on the way).
    mutating func parseString() throws(JSONParseError) -> String {
        self.index += 1
        let start = self.index
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index])
                guard let string = String(validating: slice.assumingMemoryBound(to: UInt8.self), as: UTF8.self) else {
                    self.index = start
                    throw self.error(.invalidUTF8)
                }
                self.index += 1
                return string
            }
            if byte == UInt8(ascii: "\\") { return try self.parseEscapedString(from: start) }
            if byte < 0x20 { throw self.error(.controlCharacterInString) }
            self.index += 1
        }
        throw self.error(.unexpectedEnd)
    }

    /// The slow path: the string has escapes, so it is built up byte by byte.
    mutating func parseEscapedString(from start: Int) throws(JSONParseError) -> String {
        var utf8 = Array(self.bytes[start..<self.index])
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            switch byte {
            case UInt8(ascii: "\""):
                self.index += 1
                guard let string = String(validating: utf8, as: UTF8.self) else {
                    self.index = start
                    throw self.error(.invalidUTF8)
                }
                return string
            case UInt8(ascii: "\\"):
                self.index += 1
                let escape = try self.peek()
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""): utf8.append(0x22)
                case UInt8(ascii: "\\"): utf8.append(0x5C)
                case UInt8(ascii: "/"): utf8.append(0x2F)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"): try self.appendUnicodeEscape(to: &utf8)
                default:
                    self.index -= 2
                    throw self.error(.invalidEscape)
                }
            case 0..<0x20:
                throw self.error(.controlCharacterInString)
            default:
                utf8.append(byte)
                self.index += 1
            }
        }
        throw self.error(.unexpectedEnd)
    }

    mutating func readHex4() throws(JSONParseError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.error(.unexpectedEnd) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw self.error(.invalidEscape)
            }
            value = value << 4 | UInt32(digit)
            self.index += 1
        }
        return value
    }

    /// `\uXXXX`, joining surrogate pairs; a lone surrogate cannot be a Swift string, so it is refused.
    mutating func appendUnicodeEscape(to utf8: inout [UInt8]) throws(JSONParseError) {
        var scalarValue = try self.readHex4()
        if (0xD800...0xDBFF).contains(scalarValue) {
            guard self.index + 2 <= self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\\"),
                self.bytes[self.index + 1] == UInt8(ascii: "u")
            else { throw self.error(.invalidEscape) }
            self.index += 2
            let low = try self.readHex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw self.error(.invalidEscape) }
            scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let scalar = Unicode.Scalar(scalarValue) else { throw self.error(.invalidEscape) }
        utf8.append(contentsOf: UTF8.encode(scalar)!)
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = self.index
        var isInteger = true
        if self.bytes[self.index] == UInt8(ascii: "-") { self.index += 1 }
        guard self.index < self.bytes.count else { throw self.error(.invalidNumber) }
        if self.bytes[self.index] == UInt8(ascii: "0") {
            self.index += 1
        } else {
            guard self.skipDigits() > 0 else { throw self.error(.invalidNumber) }
        }
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ".") {
            isInteger = false
            self.index += 1
            guard self.skipDigits() > 0 else { throw self.error(.invalidNumber) }
        }
        if self.index < self.bytes.count, self.bytes[self.index] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            self.index += 1
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-") {
                self.index += 1
            }
            guard self.skipDigits() > 0 else { throw self.error(.invalidNumber) }
        }
        if isInteger, let integer = self.integer(start..<self.index) { return .integer(integer) }
        let text = String(decoding: self.bytes[start..<self.index], as: UTF8.self)
        guard let double = Double(text), double.isFinite else {
            self.index = start
            throw self.error(.invalidNumber)
        }
        return .number(double)
    }

    /// The integer the (already validated) digits in `range` spell; nil when it overflows Int64.
    func integer(_ range: Range<Int>) -> Int64? {
        var index = range.lowerBound
        let negative = self.bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        var value: Int64 = 0
        while index < range.upperBound {
            let digit = Int64(self.bytes[index] - UInt8(ascii: "0"))
            let (shifted, overflowShift) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowAdd) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !overflowShift && !overflowAdd else { return nil }
            value = next
            index += 1
        }
        return value
    }

    mutating func skipDigits() -> Int {
        let start = self.index
        while self.index < self.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self.bytes[self.index]) {
            self.index += 1
        }
        return self.index - start
    }
}
