public import FlowCore
public import FlowProtocol
import Dispatch

/// A test endpoint supporting all seven methods. It answers with what it was given:
/// `{method, objectid, parameters, data, user}`. Parameters steer it:
/// `sleep_ms` (integer) waits first (cancellable); `commit_ms` works that long whatever happens,
/// then succeeds (as a committed write does); `fail: "internal"` throws a non-Flow error whose text must
/// never reach the client; `fail: "missing"` throws `DO_NOT_EXIST`.
public final class EchoEndpoint: Endpoint {
    public let definition: EndpointDefinition
    private let running = Locked((now: 0, peak: 0, total: 0))
    private let dataValidator: (any DataValidator)?

    public init(
        _ namespace: String = "test/echo", methods: Set<Method> = Set(Method.allCases), publicMethods: Set<Method> = [], application: String? = nil,
        validator: (any DataValidator)? = nil
    ) {
        self.definition = EndpointDefinition(
            namespace: Namespace(namespace)!, application: application, title: "Echo", methods: methods, publicMethods: publicMethods
        )
        self.dataValidator = validator
    }

    public func validator(for method: Method) -> (any DataValidator)? { self.dataValidator }

    /// The most calls that ran at the same time.
    public var peakConcurrency: Int { self.running.withLock { $0.peak } }
    /// Calls running right now.
    public var runningCalls: Int { self.running.withLock { $0.now } }
    /// Calls handled so far.
    public var totalCalls: Int { self.running.withLock { $0.total } }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        self.running.withLock {
            $0.now += 1
            $0.total += 1
            $0.peak = max($0.peak, $0.now)
        }
        defer { self.running.withLock { $0.now -= 1 } }
        if case .integer(let milliseconds)? = call.parameters?["sleep_ms"] {
            try await Task.sleep(for: .milliseconds(milliseconds))
        }
        // Work that cancellation cannot stop once begun, as a database commit: it ends in success.
        if case .integer(let milliseconds)? = call.parameters?["commit_ms"] {
            await withCheckedContinuation { continuation in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(milliseconds))) { continuation.resume() }
            }
        }
        switch call.parameters?["fail"] {
        case "internal"?: throw SecretError()
        case "missing"?: throw FlowError(.doNotExist, "Object does not exist")
        default: break
        }
        return Reply(data: [
            "method": .string(call.method.rawValue),
            "namespace": .string(call.namespace.rawValue),
            "objectid": call.objectid.map { .string($0) } ?? .null,
            "parameters": call.parameters ?? .null,
            "data": call.data ?? .null,
            "user": context.identity.username.map { .string($0) } ?? .null,
        ])
    }
}

/// An error whose description holds something that must only ever reach the log.
public struct SecretError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "SELECT * FROM secrets -- /var/lib/flowgate/db.sqlite" }
}

/// A validator that wants an object with a string `name`.
public struct NameRequired: DataValidator {
    public init() {}

    public func problems(with data: JSONValue) -> [DataProblem] {
        guard case .object(let object) = data else { return [DataProblem(path: "", message: "must be an object")] }
        guard case .string? = object["name"] else { return [DataProblem(path: "/name", message: "is required")] }
        return []
    }
}
