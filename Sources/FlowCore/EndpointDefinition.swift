public import FlowProtocol

/// How an endpoint was registered (SPEC §4).
public struct EndpointKind: RawRepresentable, Hashable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A Swift type registered in code (`system/*`, `auth/*`).
    public static let inProcess = EndpointKind(rawValue: "in-process")
    /// A collection declared in `Endpoints/`, stored in the embedded database.
    public static let collection = EndpointKind(rawValue: "collection")
    /// Registered at run time by a remote subsystem over WebSocket.
    public static let provider = EndpointKind(rawValue: "provider")
    /// Forwarded to an HTTP upstream.
    public static let upstream = EndpointKind(rawValue: "upstream")
}

/// What an endpoint declares: namespace, owning application, title, methods, which methods
/// are public, the scope each method needs, and the data schema.
public struct EndpointDefinition: Sendable, Equatable {
    public var namespace: Namespace
    /// The application owning the endpoint: the first segment of its HTTP path after `/api/`.
    public var application: String
    public var title: String
    public var kind: EndpointKind
    public var methods: Set<Method>
    /// Methods callable without a credential (SPEC §9.5).
    public var publicMethods: Set<Method>
    /// Methods any signed-in user may call without a scope; the handler limits them to the
    /// caller's own objects (SPEC §9.3 self-service: `auth/session`, `auth/tokens`).
    public var selfServiceMethods: Set<Method>
    /// Scopes that differ from the default `<namespace>:<METHOD>`.
    public var scopeOverrides: [Method: Scope]
    /// The JSON Schema for `data`, if any.
    public var schema: JSONValue?
    /// The JSON Schema for `data` of the methods where it differs from `schema` (SPEC §4).
    public var methodSchemas: [Method: JSONValue]
    /// Methods that need a WebSocket (a provider registers the socket it calls through): over
    /// HTTP they are `METHOD_NOT_ALLOWED`, and the OpenAPI document leaves them out.
    public var webSocketOnlyMethods: Set<Method>
    /// Methods whose body may be a file (`application/octet-stream`, an ``Attachment``) and
    /// whose answer may be one: HTTP only, so over WebSocket they are `METHOD_NOT_ALLOWED` (the
    /// mirror of ``webSocketOnlyMethods``).
    public var binaryMethods: Set<Method>
    /// The JSON Schema of what the endpoint answers with (each item, for LIST) when it is not
    /// `schema` (with the server fields, for collections). Documentation: the OpenAPI document.
    public var resultSchema: JSONValue?

    /// A definition; `application` defaults to the namespace's first segment.
    public init(
        namespace: Namespace,
        application: String? = nil,
        title: String,
        kind: EndpointKind = .inProcess,
        methods: Set<Method>,
        publicMethods: Set<Method> = [],
        selfServiceMethods: Set<Method> = [],
        scopeOverrides: [Method: Scope] = [:],
        schema: JSONValue? = nil,
        methodSchemas: [Method: JSONValue] = [:],
        webSocketOnlyMethods: Set<Method> = [],
        binaryMethods: Set<Method> = [],
        resultSchema: JSONValue? = nil
    ) {
        self.namespace = namespace
        self.application = application ?? namespace.firstSegment
        self.title = title
        self.kind = kind
        self.methods = methods
        self.publicMethods = publicMethods
        self.selfServiceMethods = selfServiceMethods
        self.scopeOverrides = scopeOverrides
        self.schema = schema
        self.methodSchemas = methodSchemas
        self.webSocketOnlyMethods = webSocketOnlyMethods
        self.binaryMethods = binaryMethods
        self.resultSchema = resultSchema
    }

    /// The JSON Schema for `data` of `method`.
    public func schema(for method: Method) -> JSONValue? {
        self.methodSchemas[method] ?? self.schema
    }

    /// The scope a caller needs for `method`.
    public func scope(for method: Method) -> String {
        self.scopeOverrides[method]?.description ?? "\(self.namespace.rawValue):\(method.rawValue)"
    }

    /// Whether `method` may be called without a credential.
    public func isPublic(_ method: Method) -> Bool { self.publicMethods.contains(method) }
}
