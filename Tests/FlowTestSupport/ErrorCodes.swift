public import FlowProtocol

/// The error code `body` fails with; nil when it succeeds (or fails with an error that is not
/// a ``FlowError``, which no check expects).
public func errorCode<T>(_ body: () async throws -> T) async -> ErrorCode? {
    do {
        _ = try await body()
        return nil
    } catch {
        return (error as? FlowError)?.code
    }
}
