import Foundation

/// The formats checked when a schema asserts them (SPEC §8): date-time, uuid, email.
enum Formats {
    /// Whether `text` is a valid `format`; nil for formats that are only annotations here.
    static func check(_ format: String, _ text: String) -> Bool? {
        switch format {
        case "date-time": Self.isDateTime(text)
        case "uuid": Self.matches(text, #"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"#)
        case "email": Self.matches(text, #"^[^@\s]+@[^@\s]+\.[^@\s]+$"#)
        default: nil
        }
    }

    private static func matches(_ text: String, _ pattern: String) -> Bool {
        text.range(of: pattern, options: .regularExpression) != nil
    }

    /// RFC 3339 `date-time`, with real calendar and clock ranges (leap second allowed).
    private static func isDateTime(_ text: String) -> Bool {
        let pattern = #"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$"#
        guard Self.matches(text, pattern) else { return false }
        let digits = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard digits.count >= 6 else { return false }
        let (year, month, day, hour, minute, second) = (digits[0], digits[1], digits[2], digits[3], digits[4], digits[5])
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...days[month - 1]).contains(day), hour < 24, minute < 60, second <= 60 else { return false }
        return true
    }
}
