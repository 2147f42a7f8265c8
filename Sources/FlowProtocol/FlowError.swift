/// A failure that becomes a failure response: an error code, a message that is safe to show
/// to the caller, and optional structured detail for `data`.
///
/// Throw it from anywhere below the dispatcher; the dispatcher adds the `errorid`.
///
/// ```swift
/// throw FlowError(.doNotExist, "Object does not exist")
/// ```
public struct FlowError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable error code.
    public var code: ErrorCode
    /// Human-readable, safe to show: never a stack trace, SQL, a file path or a secret.
    public var message: String
    /// Structured detail for the response's `data` (validation errors, the current object on CONFLICT).
    public var data: JSONValue?

    /// A failure with `code`, `message` and optional `data`.
    public init(_ code: ErrorCode, _ message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }
}
