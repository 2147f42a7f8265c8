public import FlowProtocol

/// An endpoint a subsystem serves through ``FlowClient/provide(_:handler:)``: the data of
/// `CREATE system/providers` (SPEC §5.4).
public struct ProvidedEndpoint: Sendable {
    public var namespace: Namespace
    public var application: String?
    public var title: String?
    /// The methods served; may be left empty when an `Endpoints/` file reserves the namespace.
    public var methods: Set<FlowProtocol.Method>
    /// The JSON Schema the gateway checks `data` against before the call reaches the provider.
    public var schema: JSONValue?
    /// Calls in flight at once on this provider (the gateway's default is 64).
    public var concurrency: Int?
    /// How long the provider may take per call (the gateway's default is 30 s).
    public var timeout: Duration?

    public init(
        namespace: Namespace, application: String? = nil, title: String? = nil, methods: Set<FlowProtocol.Method> = [],
        schema: JSONValue? = nil, concurrency: Int? = nil, timeout: Duration? = nil
    ) {
        self.namespace = namespace
        self.application = application
        self.title = title
        self.methods = methods
        self.schema = schema
        self.concurrency = concurrency
        self.timeout = timeout
    }

    /// The registration's `data`.
    var registration: JSONValue {
        var object: JSONObject = ["namespace": .string(self.namespace.rawValue)]
        if let application = self.application { object["application"] = .string(application) }
        if let title = self.title { object["title"] = .string(title) }
        if !self.methods.isEmpty { object["methods"] = .array(self.methods.sorted().map { .string($0.rawValue) }) }
        if let schema = self.schema { object["schema"] = schema }
        if let concurrency = self.concurrency { object["concurrency"] = .integer(Int64(concurrency)) }
        if let timeout = self.timeout { object["timeout_ms"] = .integer(Int64(timeout / .milliseconds(1))) }
        return .object(object)
    }
}

/// One call as a provider's handler receives it: the envelope's content and who made the call,
/// never the caller's token (SPEC §5.4 point 2).
public struct ProviderCall: Sendable {
    public var method: FlowProtocol.Method
    public var namespace: Namespace
    public var objectid: String?
    public var parameters: JSONValue?
    public var data: JSONValue?
    /// The caller's user name; nil for an anonymous caller of a public method.
    public var user: String?
    public var roles: [String]
    public var scopes: [String]
    /// The W3C trace context of the call, when the gateway traces it.
    public var traceparent: String?

    /// Reads a `call` frame; nil when it is not one this client can serve.
    init?(frame: JSONObject) {
        guard let name = frame["method"]?.stringValue, let method = FlowProtocol.Method(rawValue: name),
            let namespace = frame["namespace"]?.stringValue.flatMap(Namespace.init)
        else { return nil }
        self.method = method
        self.namespace = namespace
        self.objectid = frame["objectid"]?.stringValue
        self.parameters = frame["parameters"]
        self.data = frame["data"]
        let identity = frame["identity"]?.objectValue
        self.user = identity?["user"]?.stringValue
        self.roles = identity?["roles"]?.arrayValue?.compactMap(\.stringValue) ?? []
        self.scopes = identity?["scopes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        self.traceparent = frame["traceparent"]?.stringValue
    }
}
