/// A stable error code of a failure response, with the HTTP status it maps to (SPEC §3).
///
/// The table is ``ErrorCode/all``; `Schemas/response.schema.json` and the tests are held to it.
///
/// ```swift
/// ErrorCode.doNotExist.rawValue    // "DO_NOT_EXIST"
/// ErrorCode.doNotExist.httpStatus  // 404
/// ```
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code as it appears in `errorcode`.
    public let rawValue: String
    /// The HTTP status line a failure with this code gets.
    public let httpStatus: Int

    private init(_ rawValue: String, _ httpStatus: Int) {
        self.rawValue = rawValue
        self.httpStatus = httpStatus
    }

    /// The code named `rawValue`, if it is in the table.
    public init?(rawValue: String) {
        guard let code = Self.all.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = code
    }

    public var description: String { self.rawValue }

    public static let invalidJSON = ErrorCode("INVALID_JSON", 400)
    public static let invalidRequest = ErrorCode("INVALID_REQUEST", 400)
    public static let unknownMethod = ErrorCode("UNKNOWN_METHOD", 400)
    public static let objectIDRequired = ErrorCode("OBJECTID_REQUIRED", 400)
    public static let dataRequired = ErrorCode("DATA_REQUIRED", 400)
    public static let ambiguousRequest = ErrorCode("AMBIGUOUS_REQUEST", 400)
    public static let unauthenticated = ErrorCode("UNAUTHENTICATED", 401)
    public static let forbidden = ErrorCode("FORBIDDEN", 403)
    public static let noSuchEndpoint = ErrorCode("NO_SUCH_ENDPOINT", 404)
    public static let doNotExist = ErrorCode("DO_NOT_EXIST", 404)
    public static let methodNotAllowed = ErrorCode("METHOD_NOT_ALLOWED", 405)
    public static let alreadyExists = ErrorCode("ALREADY_EXISTS", 409)
    public static let cursorExpired = ErrorCode("CURSOR_EXPIRED", 410)
    public static let conflict = ErrorCode("CONFLICT", 409)
    public static let payloadTooLarge = ErrorCode("PAYLOAD_TOO_LARGE", 413)
    public static let validationFailed = ErrorCode("VALIDATION_FAILED", 422)
    public static let rateLimited = ErrorCode("RATE_LIMITED", 429)
    public static let internalError = ErrorCode("INTERNAL_ERROR", 500)
    public static let providerUnavailable = ErrorCode("PROVIDER_UNAVAILABLE", 503)
    public static let shuttingDown = ErrorCode("SHUTTING_DOWN", 503)
    public static let timeout = ErrorCode("TIMEOUT", 504)

    /// Every error code, in the order of SPEC §3's table.
    public static let all: [ErrorCode] = [
        .invalidJSON, .invalidRequest, .unknownMethod, .objectIDRequired, .dataRequired, .ambiguousRequest,
        .unauthenticated, .forbidden, .noSuchEndpoint, .doNotExist, .methodNotAllowed, .alreadyExists,
        .cursorExpired, .conflict, .payloadTooLarge, .validationFailed, .rateLimited, .internalError, .providerUnavailable,
        .shuttingDown, .timeout,
    ]
}
