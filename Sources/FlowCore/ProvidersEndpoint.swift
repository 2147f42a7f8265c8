import FlowProtocol

/// `system/providers` (SPEC §5.4): CREATE registers the calling WebSocket as a provider of a
/// namespace, DELETE unregisters it; LIST and OPEN show the registrations.
///
/// CREATE and DELETE are open to any signed-in caller: the handler itself requires a
/// `provide:<pattern>` scope matching the namespace, and lets a socket remove only its own
/// registrations unless the caller may `DELETE system/providers`.
public struct ProvidersEndpoint: Endpoint {
    public let definition = EndpointDefinition(
        namespace: Namespace("system/providers")!,
        title: "Provider registrations",
        methods: [.list, .open, .create, .delete],
        selfServiceMethods: [.create, .delete],
        schema: Self.registrationSchema,
        webSocketOnlyMethods: [.create, .delete]
    )
    let hub: ProviderHub

    public init(hub: ProviderHub) {
        self.hub = hub
    }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        switch call.method {
        case .create:
            guard let connection = context.connection else {
                throw FlowError(.invalidRequest, "Providers register over a WebSocket: the calls reach them through it")
            }
            let request = try ProviderRegistration(parsing: call.data)
            guard context.identity.grants.allowProviding(request.namespace) else {
                throw FlowError(.forbidden, "Not allowed to provide \(request.namespace): it needs a provide: scope")
            }
            return Reply(
                data: try self.hub.register(
                    request, connection: connection, username: context.identity.username, credential: context.credential, node: context.identity.node
                )
            )
        case .delete:
            let mayRemoveAny = context.identity.grants.allow(.delete, on: self.definition.namespace)
            return Reply(data: try self.hub.unregister(call.objectid ?? "", connection: context.connection?.id, mayRemoveAny: mayRemoveAny))
        case .open:
            guard let registration = self.hub.registration(call.objectid ?? "") else {
                throw FlowError(.doNotExist, "No provider registration has that id")
            }
            return Reply(data: registration)
        default:
            let items = self.hub.registrations
            return Reply(data: .array(items), paging: ["total": .integer(Int64(items.count))])
        }
    }

    /// The registration data, for the OpenAPI document (the handler checks it field by field).
    static let registrationSchema: JSONValue = [
        "type": "object",
        "required": ["namespace"],
        "additionalProperties": false,
        "properties": [
            "namespace": ["type": "string", "description": "the namespace to serve, e.g. scheduler/queue"],
            "application": ["type": "string", "description": "the owning application (default: the namespace's first segment)"],
            "title": ["type": "string"],
            "methods": ["type": "array", "minItems": 1, "items": ["enum": ["LIST", "OPEN", "UPDATE", "DELETE", "INDEX", "CREATE", "RUN"]]],
            "schema": ["type": ["object", "boolean"], "description": "JSON Schema for data of CREATE, UPDATE and RUN"],
            "concurrency": ["type": "integer", "minimum": 1, "maximum": 10000, "default": 64],
            "timeout_ms": ["type": "integer", "minimum": 1, "maximum": 86400000, "default": 30000],
        ],
    ]
}
