import Foundation
public import FlowProtocol
public import Logging
import Synchronization
public import Tracing

/// One call as a transport hands it to the dispatcher.
public struct CallRequest: Sendable {
    public var envelope: Envelope
    public var origin: CallOrigin
    /// HTTP only: the application named in the URL; the endpoint must belong to it.
    public var application: String?
    /// HTTP only: the URL named no registered endpoint; answered `NO_SUCH_ENDPOINT` after authentication.
    public var unresolvedPath: Bool
    /// HTTP only: the method was not given but is the verb's default, and these are the other
    /// methods the verb carries. An endpoint without the default but with one of these needs the
    /// method named: `UNKNOWN_METHOD`, not `METHOD_NOT_ALLOWED` (the verb is right for it).
    public var defaultedMethodAlternatives: [Method]
    /// HTTP only: the body was a file, not JSON (`data` is nil).
    public var attachment: Attachment?

    public init(
        envelope: Envelope, origin: CallOrigin, application: String? = nil, unresolvedPath: Bool = false,
        defaultedMethodAlternatives: [Method] = []
    ) {
        self.envelope = envelope
        self.origin = origin
        self.application = application
        self.unresolvedPath = unresolvedPath
        self.defaultedMethodAlternatives = defaultedMethodAlternatives
    }
}

/// The dispatcher's answer: the response envelope and who made the call (for `Flow-User`).
public struct DispatchResult: Sendable {
    public var response: Response
    /// The authenticated user name; nil for anonymous calls and calls that failed before authentication.
    public var username: String?
    /// What the handler asked to run once the answer is delivered.
    var afterDelivery: DeliveryHook?
    /// The answer is this file, not `response` (HTTP only).
    public var attachment: Attachment?

    public init(response: Response, username: String? = nil) {
        self.response = response
        self.username = username
    }
}

/// Settings of the dispatcher.
public struct DispatcherConfiguration: Sendable {
    /// How long a handler may take before the caller gets `TIMEOUT` (SPEC §11: 30 s).
    public var callTimeout: Duration

    public init(callTimeout: Duration = .seconds(30)) {
        self.callTimeout = callTimeout
    }
}

/// Runs every call through SPEC §3's checks in order — shape, authentication, endpoint,
/// authorization, supported method, objectid/data, the data's schema — then the handler, under
/// a timeout.
///
/// It is the single place where a thrown error becomes a failure response: ``FlowError``s keep
/// their code and message; anything else is `INTERNAL_ERROR`, its detail only in the log next
/// to the errorid.
public final class Dispatcher: Sendable {
    public let registry: EndpointRegistry
    let authenticator: any Authenticator
    let policy: any AuthorizationPolicy
    let configuration: DispatcherConfiguration
    let logger: Logger
    /// Where every answer is counted and timed (SPEC §10).
    let metrics: GatewayMetrics
    /// A span per call when tracing is configured (SPEC §10); nil costs nothing.
    let tracing: CallTracing?
    private let deadlines: CallDeadlines
    private let inFlight = Atomic<Int>(0)
    private let draining = Atomic<Bool>(false)

    public init(
        registry: EndpointRegistry,
        authenticator: any Authenticator,
        policy: any AuthorizationPolicy,
        configuration: DispatcherConfiguration = .init(),
        metrics: GatewayMetrics = .disabled,
        tracer: (any Tracer)? = nil,
        sampleRatio: Double = 1,
        logger: Logger
    ) {
        self.tracing = tracer.map { CallTracing(tracer: $0, sampleRatio: sampleRatio) }
        self.registry = registry
        self.authenticator = authenticator
        self.policy = policy
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.deadlines = CallDeadlines(timeout: configuration.callTimeout)
    }

    /// Dispatches one call in a child task and always answers: failures are responses, never thrown.
    public func dispatch(_ request: CallRequest) async -> DispatchResult {
        await self.dispatch(.call(request), from: CallSource(transport: request.origin.transport, tasking: .shared(hangUp: nil))) { $0 }
    }

    /// Answers what a transport decoded — the call's result, or the failure for what did not
    /// decode — and hands the answer to `deliver` while the call still counts as in flight, so a
    /// drain (``waitUntilIdle(deadline:)``) also waits for the answer to be sent.
    ///
    /// A call that times out is cancelled through the task it runs in, chosen from
    /// `source.tasking`: the dispatching task itself when it is dedicated to the call (a timeout
    /// cancels it too; `deliver` still runs, in the cancelled task); otherwise a child task, so
    /// the transport's task is never cancelled — or, for endpoints that may wait long (providers,
    /// upstreams), a task the client hanging up cancels.
    public func dispatch<Delivered>(
        _ decoded: DecodedCall, from source: CallSource, deliver: (DispatchResult) async -> Delivered
    ) async -> Delivered {
        self.inFlight.add(1, ordering: .relaxed)
        defer { self.inFlight.subtract(1, ordering: .releasing) }
        let started = ContinuousClock.now
        let request: CallRequest
        switch decoded {
        case .call(let call):
            request = call
        case .failure(let error, let requestid):
            let response = self.failure(error, requestid: requestid, origin: source.origin())
            self.metrics.call(transport: source.transport, namespace: nil, method: nil, errorcode: response.errorcode, duration: .now - started)
            return await deliver(DispatchResult(response: response))
        }
        // Looked up once: it decides the task, and the call runs against it.
        let endpoint = self.endpoint(for: request)
        let result: DispatchResult
        switch source.tasking {
        case .dedicated:
            result = await self.answer(request, endpoint: endpoint)
        case .shared(let hangUp):
            if let hangUp, endpoint?.handlesOwnTimeout == true {
                result = await hangUp.run { await self.answer(request, endpoint: endpoint) }
            } else {
                async let answer = self.answer(request, endpoint: endpoint)
                result = await answer
            }
        }
        self.metrics.call(
            transport: source.transport, namespace: endpoint?.definition.namespace, method: request.envelope.method,
            errorcode: result.response.errorcode, duration: .now - started
        )
        let delivered = await deliver(result)
        await result.afterDelivery?.run()
        return delivered
    }

    private func answer(_ request: CallRequest, endpoint: (any Endpoint)?) async -> DispatchResult {
        guard let tracing = self.tracing, tracing.samples(request) else { return await self.answer(request, endpoint: endpoint, traceparent: nil) }
        return await tracing.trace(request, endpoint: endpoint) { traceparent in
            await self.answer(request, endpoint: endpoint, traceparent: traceparent)
        }
    }

    private func answer(_ request: CallRequest, endpoint: (any Endpoint)?, traceparent: String?) async -> DispatchResult {
        var username: String?
        do {
            let (reply, identity) = try await self.run(request, endpoint: endpoint, traceparent: traceparent)
            username = identity.username
            var response = Response(status: reply.status, success: true, dataType: reply.dataType, paging: reply.paging, requestid: request.envelope.requestid)
            response.payload = reply.payload
            var result = DispatchResult(response: response, username: username)
            result.afterDelivery = reply.afterDelivery
            result.attachment = reply.attachment
            return result
        } catch let error as IdentifiedFailure {
            username = error.identity?.username
            return DispatchResult(response: self.failure(error.underlying, request: request, username: username), username: username)
        } catch {
            return DispatchResult(response: self.failure(error, request: request))
        }
    }

    /// The failure response for `error` (the one error boundary), logged with its errorid.
    /// The log line names the user when one is known (SPEC §9: every `FORBIDDEN` is audited).
    func failure(
        _ error: any Error, requestid: RequestID?, namespace: Namespace? = nil, method: Method? = nil, origin: CallOrigin, username: String? = nil
    ) -> Response {
        let errorid = UUID().uuidString.lowercased()
        let flowError: FlowError
        var logger = self.logger
        logger[metadataKey: "flow.errorid"] = .string(errorid)
        logger[metadataKey: "flow.transport"] = .string(origin.transport.rawValue)
        if let namespace { logger[metadataKey: "flow.namespace"] = .string(namespace.rawValue) }
        if let method { logger[metadataKey: "flow.method"] = .string(method.rawValue) }
        if let requestid { logger[metadataKey: "flow.request.id"] = .string(requestid.description) }
        if let address = origin.clientAddress { logger[metadataKey: "flow.client"] = .string(address) }
        if let username { logger[metadataKey: "flow.user"] = .string(username) }
        switch error {
        case is CancellationError:
            // The caller went away (a closed socket cancels its calls): nobody reads this answer.
            flowError = FlowError(.internalError, "The call was cancelled")
            logger.debug("call cancelled")
        case let error as FlowError:
            flowError = error
            let level: Logger.Level = error.code.httpStatus >= 500 ? .warning : .info
            logger.log(level: level, "call failed", metadata: ["flow.errorcode": .string(error.code.rawValue)])
        default:
            flowError = FlowError(.internalError, "Internal error")
            logger.error("call failed", metadata: ["flow.errorcode": "INTERNAL_ERROR", "flow.error": .string(String(reflecting: error))])
        }
        return Response.failure(flowError, errorid: errorid, requestid: requestid)
    }

    private func failure(_ error: any Error, request: CallRequest, username: String? = nil) -> Response {
        self.failure(
            error, requestid: request.envelope.requestid, namespace: request.envelope.namespace,
            method: request.envelope.method, origin: request.origin, username: username
        )
    }

    /// SPEC §3, steps 2 and 4–10 (the transport did 1 and 3).
    private func run(_ request: CallRequest, endpoint: (any Endpoint)?, traceparent: String?) async throws -> (Reply, Identity) {
        guard !self.draining.load(ordering: .relaxed) else {
            throw FlowError(.shuttingDown, "The gateway is shutting down")
        }
        let envelope = request.envelope
        guard envelope.namespace != nil || request.unresolvedPath else {
            throw FlowError(.invalidRequest, "Field 'namespace' is required")
        }
        let isPublic = endpoint?.definition.isPublic(envelope.method) ?? false

        let identity = try await self.authenticate(request.origin, isPublic: isPublic)
        do {
            guard let endpoint else { throw FlowError(.noSuchEndpoint, "No such endpoint") }
            let definition = endpoint.definition
            let namespace = definition.namespace
            if !isPublic {
                try self.policy.authorize(identity, method: envelope.method, objectid: envelope.objectid, endpoint: definition)
            }
            guard definition.methods.contains(envelope.method) else {
                let instead = request.defaultedMethodAlternatives.filter { definition.methods.contains($0) && !definition.webSocketOnlyMethods.contains($0) }
                if !instead.isEmpty {
                    throw FlowError(
                        .unknownMethod,
                        "Endpoint '\(namespace)' has no \(envelope.method.rawValue), this verb's default: name the method (Flow-Request-Method: \(instead.map(\.rawValue).joined(separator: " or ")))"
                    )
                }
                throw FlowError(.methodNotAllowed, "Endpoint '\(namespace)' does not support \(envelope.method.rawValue)")
            }
            if request.origin.transport == .http, definition.webSocketOnlyMethods.contains(envelope.method) {
                throw FlowError(.methodNotAllowed, "\(envelope.method.rawValue) on '\(namespace)' needs a WebSocket: \(namespace) calls back through it")
            }
            if request.origin.transport != .http, definition.binaryMethods.contains(envelope.method) {
                throw FlowError(.methodNotAllowed, "\(envelope.method.rawValue) on '\(namespace)' needs HTTP: it takes or answers a file")
            }
            if request.attachment != nil, !definition.binaryMethods.contains(envelope.method) {
                throw FlowError(.invalidRequest, "\(envelope.method.rawValue) on '\(namespace)' takes JSON, not application/octet-stream")
            }
            try Self.checkObjectIDAndData(envelope, attachment: request.attachment != nil)
            if envelope.method.requiresData, let data = envelope.data, let validator = endpoint.validator(for: envelope.method) {
                try validator.check(data)
            }
            let call = Call(
                method: envelope.method, namespace: namespace, objectid: envelope.objectid,
                parameters: envelope.parameters, data: envelope.method.requiresData ? envelope.data : nil
            )
            var context = CallContext(
                identity: identity, transport: request.origin.transport, clientAddress: request.origin.clientAddress,
                requestid: envelope.requestid, namespace: namespace, method: envelope.method,
                connection: request.origin.connection, baseLogger: self.logger
            )
            context.credential = request.origin.credential
            context.attachment = request.attachment
            context.traceparent = traceparent
            let reply: Reply
            if endpoint.handlesOwnTimeout {
                reply = try await endpoint.handle(call, context: context)
            } else {
                reply = try await self.deadlines.run { try await endpoint.handle(call, context: context) }
            }
            return (reply, identity)
        } catch {
            throw IdentifiedFailure(underlying: error, identity: identity)
        }
    }

    /// The endpoint a call names (step 5): nil when none has its namespace, or the URL named
    /// another application.
    func endpoint(for request: CallRequest) -> (any Endpoint)? {
        guard !request.unresolvedPath, let namespace = request.envelope.namespace, let endpoint = self.registry.endpoint(for: namespace) else { return nil }
        if let application = request.application, endpoint.definition.application != application { return nil }
        return endpoint
    }

    /// SPEC §11: whether an HTTP request's body may be read, decided from its head alone (`call`
    /// is nil when the head could not be decoded): yes for a public method, otherwise only once
    /// the caller is authenticated. The refusal, if any, is the failure to answer with; the body
    /// of a caller nobody knows is never buffered.
    ///
    /// A file body (`binary`, SPEC §10's snapshots, possibly large) is read only for a call that
    /// would run: an endpoint that takes one for the method, and a caller authorized for it.
    public func refusalBeforeBody(_ call: CallRequest?, origin: CallOrigin, binary: Bool = false) async -> FlowError? {
        let endpoint = call.flatMap { self.endpoint(for: $0) }
        if !binary, let call, endpoint?.definition.isPublic(call.envelope.method) == true { return nil }
        do throws(FlowError) {
            let identity = try await self.authenticate(origin, isPublic: false)
            guard binary else { return nil }
            guard let call, let endpoint, endpoint.definition.binaryMethods.contains(call.envelope.method) else {
                return FlowError(.invalidRequest, "This call takes JSON, not application/octet-stream")
            }
            try self.policy.authorize(identity, method: call.envelope.method, objectid: call.envelope.objectid, endpoint: endpoint.definition)
            return nil
        } catch {
            return error
        }
    }

    private func authenticate(_ origin: CallOrigin, isPublic: Bool) async throws(FlowError) -> Identity {
        do {
            if let identity = try await self.authenticator.authenticate(origin.credential, origin: origin) { return identity }
        } catch where isPublic && error.code == .unauthenticated {
            // A stale credential must not lock anyone out of a public method such as login.
            return .anonymous
        }
        guard isPublic else { throw FlowError(.unauthenticated, "Authentication required") }
        return .anonymous
    }

    /// SPEC §2's table: which methods need an objectid and data, and which must not carry an objectid.
    static func checkObjectIDAndData(_ envelope: Envelope, attachment: Bool = false) throws(FlowError) {
        let method = envelope.method
        if method.requiresObjectID && envelope.objectid == nil {
            throw FlowError(.objectIDRequired, "\(method.rawValue) needs an 'objectid'")
        }
        if !method.requiresObjectID && envelope.objectid != nil {
            throw FlowError(.invalidRequest, "\(method.rawValue) must not carry an 'objectid' (choose a new object's id with data.id)")
        }
        if method.requiresData && envelope.data == nil && !attachment {
            throw FlowError(.dataRequired, "\(method.rawValue) needs 'data'")
        }
    }

    // MARK: Draining

    /// Stops admitting calls: every new call answers `SHUTTING_DOWN`.
    public func beginDraining() {
        self.draining.store(true, ordering: .relaxed)
    }

    /// Whether the dispatcher is draining.
    public var isDraining: Bool { self.draining.load(ordering: .relaxed) }

    /// Calls currently inside the dispatcher.
    public var callsInFlight: Int { self.inFlight.load(ordering: .acquiring) }

    /// Waits until no call is in flight, or `deadline` passes. Returns whether it drained.
    public func waitUntilIdle(deadline: ContinuousClock.Instant) async -> Bool {
        while self.callsInFlight > 0 {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }
}

/// A failure after authentication, carrying who made the call so `Flow-User` is still set.
private struct IdentifiedFailure: Error {
    let underlying: any Error
    let identity: Identity?
}
