/// A response's `data` or `paging`: a value, or JSON text that is already encoded (an object
/// read back from the store), written out unchanged instead of being parsed and encoded again.
public enum JSONPayload: Sendable {
    case value(JSONValue)
    /// Valid JSON text that this process wrote itself; it is not checked again.
    case encoded(String)

    /// The value (encoded text is parsed; nil only if it is not valid JSON).
    public var value: JSONValue? {
        switch self {
        case .value(let value): value
        case .encoded(let text): try? JSONValue(parsing: text, maxDepth: 512)
        }
    }
}

extension JSONPayload: Equatable {
    /// Payloads are equal when their values are, however they are held.
    public static func == (lhs: JSONPayload, rhs: JSONPayload) -> Bool {
        switch (lhs, rhs) {
        case (.encoded(let left), .encoded(let right)) where left == right: true
        default: lhs.value == rhs.value
        }
    }
}

extension JSONWriter {
    /// Appends the JSON text of `payload`.
    public mutating func write(_ payload: JSONPayload) {
        switch payload {
        case .value(let value): self.write(value)
        case .encoded(let text): self.write(encoded: text)
        }
    }
}
