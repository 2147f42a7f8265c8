public import FlowCore
public import FlowProtocol

extension JSONSchema: DataValidator {
    public func problems(with data: JSONValue) -> [DataProblem] {
        self.validate(data).map { DataProblem(path: $0.path, message: $0.message) }
    }
}
