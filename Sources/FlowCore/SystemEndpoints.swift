public import FlowProtocol

/// `system/endpoints`: the registry's own description of every endpoint (SPEC §4).
///
/// LIST returns every endpoint; OPEN takes a namespace as the object id. Object ids cannot
/// contain `/` (SPEC §2), so the namespace's `/` may be written as `:` (`inventory:device`).
public struct SystemEndpointsEndpoint: Endpoint {
    public static let namespace = Namespace("system/endpoints")!

    /// An endpoint's object id here: its namespace with `:` for `/`.
    public static func objectID(_ namespace: Namespace) -> String {
        String(namespace.rawValue.map { $0 == "/" ? ":" : $0 })
    }

    public let definition = EndpointDefinition(
        namespace: SystemEndpointsEndpoint.namespace,
        title: "Endpoint registry",
        methods: [.list, .open]
    )
    let registry: EndpointRegistry

    public init(registry: EndpointRegistry) {
        self.registry = registry
    }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        switch call.method {
        case .list:
            let items = self.registry.all.map(Self.describe)
            return Reply(data: .array(items), paging: ["total": .integer(Int64(items.count))])
        default:
            let text = (call.objectid ?? "").replacingColons()
            guard let namespace = Namespace(text), let endpoint = self.registry.endpoint(for: namespace) else {
                throw FlowError(.doNotExist, "No endpoint has that namespace")
            }
            return Reply(data: Self.describe(endpoint))
        }
    }

    /// `{namespace, application, title, kind, methods, public, schema, served, providers}`.
    public static func describe(_ endpoint: any Endpoint) -> JSONValue {
        let definition = endpoint.definition
        return [
            "namespace": .string(definition.namespace.rawValue),
            "application": .string(definition.application),
            "title": .string(definition.title),
            "kind": .string(definition.kind.rawValue),
            "methods": .array(definition.methods.sorted().map { .string($0.rawValue) }),
            "public": .array(definition.publicMethods.sorted().map { .string($0.rawValue) }),
            "schema": definition.schema ?? .null,
            "served": .bool(endpoint.isServed),
            "providers": .integer(Int64(endpoint.providerCount)),
        ]
    }
}

extension String {
    fileprivate func replacingColons() -> String {
        String(self.map { $0 == ":" ? "/" : $0 })
    }
}
