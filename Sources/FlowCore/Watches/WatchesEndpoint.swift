import FlowProtocol

/// `system/watches` (SPEC §13.1): the caller's watches on its own socket (or stream). CREATE
/// starts one, DELETE ends one, LIST shows them. Open to any signed-in caller: CREATE itself
/// needs the scope for LIST on the watched namespace (OPEN with an objectid), and a socket only
/// ever sees and ends its own watches.
public struct WatchesEndpoint: Endpoint {
    public let definition = EndpointDefinition(
        namespace: Namespace("system/watches")!,
        title: "Watches: live events of a collection on this socket",
        methods: [.list, .create, .delete],
        selfServiceMethods: [.list, .create, .delete],
        schema: Self.watchSchema,
        webSocketOnlyMethods: [.list, .create, .delete]
    )
    let hub: WatchHub

    public init(hub: WatchHub) {
        self.hub = hub
    }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        guard let connection = context.connection else {
            throw FlowError(.invalidRequest, "Watches live on a WebSocket (or an event stream): the events go through it")
        }
        switch call.method {
        case .create:
            let request = try Self.request(call.data)
            guard let endpoint = self.hub.registry.endpoint(for: request.namespace) else {
                throw FlowError(.noSuchEndpoint, "No such endpoint")
            }
            let definition = endpoint.definition
            let method: Method = request.objectid == nil ? .list : .open
            if !definition.isPublic(method) {
                try self.hub.policy.authorize(context.identity, method: method, objectid: request.objectid, endpoint: definition)
            }
            // Collections replay from the change log; providers' published events and
            // system/endpoints' are live only (SPEC §13.2).
            let isLog = definition.kind == .collection
            guard isLog || definition.kind == .provider || definition.namespace == SystemEndpointsEndpoint.namespace else {
                throw FlowError(.methodNotAllowed, "'\(definition.namespace)' has no events: watch a collection, a provider namespace or system/endpoints")
            }
            if !isLog, request.since != nil {
                throw FlowError(.invalidRequest, "'\(definition.namespace)' has live events only: 'since' needs a collection")
            }
            let watch = try await self.hub.add(
                request, definition: definition, identity: context.identity, credential: context.credential, connection: connection
            )
            var reply = Reply(data: watch.description(epoch: self.hub.epoch))
            // A task of its own: a replay goes at the reader's pace, and must not hold a call slot
            // (or a drain) meanwhile. Closing the socket stops it.
            reply.afterDelivery = DeliveryHook { Task { await watch.start() } }
            return reply
        case .delete:
            guard self.hub.delete(call.objectid ?? "", connectionID: connection.id) else {
                throw FlowError(.doNotExist, "This socket has no watch with that id")
            }
            return Reply(data: ["id": .string(call.objectid ?? "")])
        default:
            let watches = self.hub.watches(of: connection.id).map { $0.description(epoch: self.hub.epoch) }
            return Reply(data: .array(watches), paging: ["total": .integer(Int64(watches.count))])
        }
    }

    /// CREATE's data, field by field.
    static func request(_ data: JSONValue?) throws(FlowError) -> WatchHub.Request {
        guard case .object(let object)? = data else { throw FlowError(.invalidRequest, "A watch is an object such as {\"namespace\": \"inventory/device\"}") }
        if let unknown = object.keys.first(where: { !["namespace", "objectid", "filter", "since"].contains($0) }) {
            throw FlowError.validationFailed([DataProblem(path: "/" + unknown.prefix(64), message: "is not a field of a watch")])
        }
        guard case .string(let text)? = object["namespace"], let namespace = Namespace(text) else {
            throw FlowError.validationFailed([DataProblem(path: "/namespace", message: "must be a namespace such as inventory/device")])
        }
        var request = WatchHub.Request(namespace: namespace, objectid: nil, filter: [:], since: nil)
        switch object["objectid"] {
        case nil, .null?: break
        case .string(let objectid)? where ObjectID.isValid(objectid): request.objectid = objectid
        default: throw FlowError.validationFailed([DataProblem(path: "/objectid", message: "must be an object id")])
        }
        switch object["filter"] {
        case nil, .null?: break
        case .object(let filter)?:
            guard filter.count <= Self.maxFilterFields else {
                throw FlowError.validationFailed([DataProblem(path: "/filter", message: "may name at most \(Self.maxFilterFields) fields")])
            }
            for (field, value) in filter {
                guard CollectionEndpoint.isFieldName(field) else {
                    throw FlowError.validationFailed([DataProblem(path: "/filter", message: "field names must be 1 to 64 characters without \" or control characters")])
                }
                switch value {
                case .array, .object: throw FlowError.validationFailed([DataProblem(path: "/filter/" + field, message: "must be a string, number, boolean or null")])
                default: request.filter[field] = value
                }
            }
        default: throw FlowError.validationFailed([DataProblem(path: "/filter", message: "must be an object of field: value")])
        }
        switch object["since"] {
        case nil, .null?: break
        case .string(let since)?: request.since = since
        default: throw FlowError.validationFailed([DataProblem(path: "/since", message: "must be a position string")])
        }
        return request
    }

    /// Filter fields a watch may name (as LIST's default `max_filter_fields`).
    static let maxFilterFields = 16

    /// CREATE's data, for the OpenAPI document.
    static let watchSchema: JSONValue = [
        "type": "object",
        "required": ["namespace"],
        "additionalProperties": false,
        "properties": [
            "namespace": ["type": "string", "description": "the collection to watch, e.g. inventory/device"],
            "objectid": ["type": "string", "description": "watch this object only"],
            "filter": [
                "type": "object", "maxProperties": .integer(Int64(Self.maxFilterFields)),
                "additionalProperties": ["type": ["string", "number", "boolean", "null"]],
                "description": "LIST's filter: only objects whose fields equal these values",
            ],
            "since": ["type": "string", "description": "a position (paging.position of a LIST, or an event's): replay every change after it first"],
        ],
    ]
}
