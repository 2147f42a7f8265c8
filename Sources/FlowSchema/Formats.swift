/// The formats checked when a schema asserts them (SPEC §8): date-time, uuid, email. Matched
/// with the same linear-time machine as `pattern`, so a long string costs linear time.
enum Formats {
    /// Whether `text` is a valid `format`; nil for formats that are only annotations here.
    static func check(_ format: String, _ text: String) -> Bool? {
        switch format {
        case "date-time": Self.isDateTime(text)
        case "uuid": Self.uuid.matches(text)
        case "email": Self.email.matches(text)
        default: nil
        }
    }

    private static func fixed(_ source: String) -> Pattern {
        do { return try Pattern(source) } catch { preconditionFailure("built-in pattern \(source): \(error.message)") }
    }

    private static let uuid = Self.fixed(#"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"#)
    private static let email = Self.fixed(#"^[^@\s]+@[^@\s]+\.[^@\s]+$"#)
    private static let dateTime = Self.fixed(#"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$"#)

    /// RFC 3339 `date-time`, with real calendar and clock ranges (leap second allowed).
    private static func isDateTime(_ text: String) -> Bool {
        guard Self.dateTime.matches(text) else { return false }
        let digits = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard digits.count >= 6 else { return false }
        let (year, month, day, hour, minute, second) = (digits[0], digits[1], digits[2], digits[3], digits[4], digits[5])
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...days[month - 1]).contains(day), hour < 24, minute < 60, second <= 60 else { return false }
        return true
    }
}
