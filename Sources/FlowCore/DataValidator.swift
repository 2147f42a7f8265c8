public import FlowProtocol

/// Checks a call's `data` (SPEC §8). The JSON Schema validator conforms; the dispatcher runs the
/// one an endpoint gives for a method (``Endpoint/validator(for:)``) before the handler (step 9
/// of SPEC §3), never inside a database transaction.
public protocol DataValidator: Sendable {
    /// What is wrong with `data`; empty when it is valid.
    func problems(with data: JSONValue) -> [DataProblem]
    /// Throws `VALIDATION_FAILED` listing what is wrong with `data`, if anything (or another
    /// code, for a validator that also checks the data's shape).
    func check(_ data: JSONValue) throws(FlowError)
}

extension DataValidator {
    public func check(_ data: JSONValue) throws(FlowError) {
        let problems = self.problems(with: data)
        if !problems.isEmpty { throw FlowError.validationFailed(problems) }
    }
}

/// One problem with `data`: where (a JSON Pointer) and what.
public struct DataProblem: Sendable, Hashable {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

extension FlowError {
    /// `VALIDATION_FAILED` with `data: {"errors": [{path, message}]}`.
    public static func validationFailed(_ problems: [DataProblem]) -> FlowError {
        let first = problems.first.map { " (\($0.path.isEmpty ? "/" : $0.path): \($0.message))" } ?? ""
        return FlowError(
            .validationFailed,
            "The data does not match the schema\(first)",
            data: ["errors": .array(problems.map { ["path": .string($0.path), "message": .string($0.message)] })]
        )
    }
}
