public import FlowProtocol
public import Logging

/// A handler for the seven methods, addressed by its namespace (SPEC §4). Built-in endpoints,
/// collections, providers and upstreams all conform, so the dispatcher treats them alike.
///
/// The dispatcher has already authenticated and authorized the call, checked the method is in
/// ``EndpointDefinition/methods`` and enforced the objectid/data table before `handle` runs.
///
/// ```swift
/// struct Clock: Endpoint {
///     let definition = EndpointDefinition(namespace: Namespace("demo/clock")!, title: "Server time", methods: [.list])
///     func handle(_ call: Call, context: CallContext) async throws -> Reply {
///         Reply(data: .string(Date.now.formatted(.iso8601)))
///     }
/// }
/// ```
public protocol Endpoint: Sendable {
    /// What the endpoint is and what it supports.
    var definition: EndpointDefinition { get }
    /// Whether a call could be handled right now (a provider endpoint without providers: false).
    var isServed: Bool { get }
    /// How many providers are connected (0 for other kinds).
    var providerCount: Int { get }
    /// Whether the endpoint enforces a timeout of its own (providers and upstreams have one per
    /// registration or definition); the dispatcher's `call_timeout_ms` then does not apply.
    var handlesOwnTimeout: Bool { get }
    /// What the dispatcher checks a call's `data` against before `handle` runs (SPEC §3 step 9);
    /// nil when `method` has no schema. Only methods that carry data are asked.
    func validator(for method: Method) -> (any DataValidator)?
    /// What `parameters` `method` accepts, as a JSON Schema of the JSON object, for the OpenAPI
    /// document; `true` when any string or object goes (the handler decides), nil when the
    /// method ignores them.
    func parametersSchema(for method: Method) -> JSONValue?
    /// Handles one call. Throw ``FlowError`` for failures the caller should see; anything else
    /// becomes `INTERNAL_ERROR`.
    func handle(_ call: Call, context: CallContext) async throws -> Reply
}

extension Endpoint {
    public var isServed: Bool { true }
    public var providerCount: Int { 0 }
    public var handlesOwnTimeout: Bool { false }
    public func validator(for method: Method) -> (any DataValidator)? { nil }
    public func parametersSchema(for method: Method) -> JSONValue? { nil }
}

/// One call as a handler sees it: the validated envelope without its credential.
public struct Call: Sendable {
    public var method: Method
    public var namespace: Namespace
    public var objectid: String?
    public var parameters: JSONValue?
    public var data: JSONValue?

    public init(method: Method, namespace: Namespace, objectid: String? = nil, parameters: JSONValue? = nil, data: JSONValue? = nil) {
        self.method = method
        self.namespace = namespace
        self.objectid = objectid
        self.parameters = parameters
        self.data = data
    }
}

/// What a handler knows about the call besides its content.
public struct CallContext: Sendable {
    /// Who is calling (anonymous on public methods without a credential).
    public var identity: Identity
    /// The transport and client address.
    public var transport: Transport
    public var clientAddress: String?
    /// The request id, if the client gave one.
    public var requestid: RequestID?
    public var namespace: Namespace
    public var method: Method
    /// The WebSocket the call came in on; nil over HTTP.
    public var connection: (any ConnectionHandle)?
    /// The credential the call was authenticated with: only for the gateway's own endpoints
    /// (a provider registration is watched for revocation), never shown to handlers.
    var credential: Credential?
    /// The call's body when it was a file (HTTP `application/octet-stream`, for a method in
    /// ``EndpointDefinition/binaryMethods``); `data` is nil then.
    public var attachment: Attachment?
    /// The W3C trace context a remote handler passes on (a provider's call frame, an
    /// upstream's `traceparent` header); nil when tracing is off.
    public var traceparent: String?
    let baseLogger: Logger

    public init(
        identity: Identity, transport: Transport, clientAddress: String? = nil, requestid: RequestID? = nil,
        namespace: Namespace, method: Method, connection: (any ConnectionHandle)? = nil, baseLogger: Logger
    ) {
        self.identity = identity
        self.transport = transport
        self.clientAddress = clientAddress
        self.requestid = requestid
        self.namespace = namespace
        self.method = method
        self.connection = connection
        self.baseLogger = baseLogger
    }

    /// A logger carrying the call's metadata. Built on use, so calls that log nothing pay nothing.
    public var logger: Logger {
        var logger = self.baseLogger
        logger[metadataKey: "flow.namespace"] = .string(self.namespace.rawValue)
        logger[metadataKey: "flow.method"] = .string(self.method.rawValue)
        if let requestid = self.requestid { logger[metadataKey: "flow.request.id"] = .string(requestid.description) }
        return logger
    }
}

/// Work that follows a call's answer. Hooks compare equal: a reply is what it says.
public struct DeliveryHook: Sendable, Equatable {
    let run: @Sendable () async -> Void

    public init(_ run: @escaping @Sendable () async -> Void) {
        self.run = run
    }

    public static func == (lhs: DeliveryHook, rhs: DeliveryHook) -> Bool { true }
}

/// A handler's successful result; the dispatcher wraps it in the response envelope.
public struct Reply: Sendable, Equatable {
    /// The result: a value, or JSON text already encoded (passed through unchanged).
    public var payload: JSONPayload?
    /// Application status (`status` in the response); 0 by default.
    public var status: Int
    /// `dataType` in the response; `"JSON"` by default.
    public var dataType: String
    /// LIST paging (`{next, total}`).
    public var paging: JSONValue?
    /// Runs once the answer has been written to the caller (a watch starts delivering only
    /// after its CREATE answer, SPEC §13.1).
    public var afterDelivery: DeliveryHook?
    /// The answer is this file rather than an envelope (HTTP only; the transport deletes it
    /// once sent).
    public var attachment: Attachment?

    /// `payload` as a value (encoded text is parsed).
    public var data: JSONValue? {
        get { self.payload?.value }
        set { self.payload = newValue.map(JSONPayload.value) }
    }

    public init(data: JSONValue? = nil, status: Int = 0, dataType: String = "JSON", paging: JSONValue? = nil) {
        self.init(payload: data.map(JSONPayload.value), status: status, dataType: dataType, paging: paging)
    }

    public init(payload: JSONPayload?, status: Int = 0, dataType: String = "JSON", paging: JSONValue? = nil) {
        self.payload = payload
        self.status = status
        self.dataType = dataType
        self.paging = paging
    }
}
