public import FlowProtocol

/// LIST's filter semantics (SPEC §7.2) on one object, for watches (SPEC §13.1): every field equals
/// its value as the store compares them — SQLite's `json_extract(body, '$.field') IS value`:
/// `null` matches a missing field too, numbers compare by value (`true` and `false` are 1 and 0),
/// strings by their text, and an array or object field by its JSON text.
public enum FilterMatch {
    public static func matches(_ object: JSONObject, _ filter: [String: JSONValue]) -> Bool {
        filter.allSatisfy { field, value in Self.equal(object[field], value) }
    }

    static func equal(_ field: JSONValue?, _ value: JSONValue) -> Bool {
        switch (Self.sqlValue(field ?? .null), Self.sqlValue(value)) {
        case (.null, .null): true
        case (.number(let left), .number(let right)): left == right
        case (.text(let left), .text(let right)): left == right
        default: false
        }
    }

    private enum SQLValue {
        case null
        case number(Double)
        case text(String)
    }

    private static func sqlValue(_ value: JSONValue) -> SQLValue {
        switch value {
        case .null: .null
        case .bool(let bool): .number(bool ? 1 : 0)
        case .integer(let integer): .number(Double(integer))
        case .number(let number): .number(number)
        case .string(let string): .text(string)
        case .array, .object: .text(value.description)
        }
    }
}
