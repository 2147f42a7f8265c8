/// The client's `requestid`: a string of at most 128 characters or an integer, echoed as it came.
public enum RequestID: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case integer(Int64)

    /// The longest string request id accepted.
    public static let maxLength = 128

    /// The id as JSON.
    public var jsonValue: JSONValue {
        switch self {
        case .string(let string): .string(string)
        case .integer(let integer): .integer(integer)
        }
    }

    public var description: String {
        switch self {
        case .string(let string): string
        case .integer(let integer): String(integer)
        }
    }
}
