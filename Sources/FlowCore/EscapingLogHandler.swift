public import Logging

/// Wraps the daemon's log handler so that no logged value can forge a log line (SPEC §11): a
/// user name, request id, object id or header value with a newline cannot start a line of its
/// own, and one with a space or `=` cannot pose as another `key=value` field.
///
/// Every metadata value is escaped, whoever set it and whatever its kind: a value holding a
/// space, `=`, `"`, `\` or a control character is written quoted, with `\"`, `\\`, `\n`, `\r`,
/// `\t` and `\u{…}` inside; other values are left as they are. Messages keep their spaces but
/// lose their control characters the same way. Escaping at the one handler, rather than at
/// each place a client's value is logged, is what makes it hold for every line.
///
/// ```swift
/// LoggingSystem.bootstrap { label in EscapingLogHandler(StreamLogHandler.standardError(label: label)) }
/// ```
public struct EscapingLogHandler: LogHandler {
    private var wrapped: any LogHandler

    public init(_ wrapped: any LogHandler) {
        self.wrapped = wrapped
    }

    public var logLevel: Logger.Level {
        get { self.wrapped.logLevel }
        set { self.wrapped.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { self.wrapped.metadataProvider }
        set { self.wrapped.metadataProvider = newValue }
    }

    public var metadata: Logger.Metadata {
        get { self.wrapped.metadata }
        set { self.wrapped.metadata = newValue.mapValues(Self.escape) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.wrapped[metadataKey: key] }
        set { self.wrapped[metadataKey: key] = newValue.map(Self.escape) }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: Self.escape(event.message.description, quoting: false))
        event.metadata = event.metadata?.mapValues(Self.escape)
        self.wrapped.log(event: event)
    }

    // MARK: Escaping

    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(Self.escape(text, quoting: true))
        case .stringConvertible(let convertible): .string(Self.escape(convertible.description, quoting: true))
        case .dictionary(let dictionary): .dictionary(dictionary.mapValues(Self.escape))
        case .array(let array): .array(array.map(Self.escape))
        }
    }

    /// `text` as it may appear in a log line. With `quoting`, a value that holds a space, `=`,
    /// `"` or `\` is also quoted, so that it reads as one field.
    public static func escape(_ text: String, quoting: Bool) -> String {
        let needsQuotes = quoting && text.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" }
        guard needsQuotes || text.unicodeScalars.contains(where: Self.isControl) else { return text }
        var escaped = needsQuotes ? "\"" : ""
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case "\"" where needsQuotes: escaped += "\\\""
            case "\\" where needsQuotes: escaped += "\\\\"
            case _ where Self.isControl(scalar): escaped += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return needsQuotes ? escaped + "\"" : escaped
    }

    /// C0, DEL, C1, and the line and paragraph separators: what a terminal or a log reader may
    /// take as the end of a line.
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}
