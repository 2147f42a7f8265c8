public import FlowCore
public import FlowProtocol
import FlowSchema

/// `auth/tokens` (SPEC §9.2): the caller's personal access tokens (everyone's for whoever has the
/// `auth/tokens` scope). LIST and OPEN show metadata only; CREATE `{name, expires?, scopes?}`
/// shows the value once; DELETE revokes.
public struct TokensEndpoint: Endpoint {
    public let definition: EndpointDefinition
    let auth: AuthService
    private let validators: [FlowProtocol.Method: JSONSchema]

    public init(auth: AuthService) {
        self.auth = auth
        let create: JSONValue = [
            "type": "object", "required": ["name"], "additionalProperties": false,
            "properties": [
                "name": ["type": "string", "minLength": 1, "maxLength": 200],
                "expires": ["type": ["string", "null"], "format": "date-time"],
                "scopes": AuthData.scopeList(auth, nullable: true),
            ],
        ]
        self.definition = EndpointDefinition(
            namespace: Namespace("auth/tokens")!, title: "Personal access tokens", methods: [.list, .open, .create, .delete],
            selfServiceMethods: [.list, .open, .create, .delete], schema: create, resultSchema: AuthData.tokenResult
        )
        self.validators = AuthData.validators(self.definition)
    }

    public func validator(for method: FlowProtocol.Method) -> (any DataValidator)? { self.validators[method] }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        let identity = context.identity
        switch call.method {
        case .list:
            return Reply(data: .array(self.auth.tokens(visibleTo: identity).map { .object(AuthData.token($0)) }))
        case .open:
            guard let token = self.auth.token(id: call.objectid!, visibleTo: identity) else { throw FlowError(.doNotExist, "Token does not exist") }
            return Reply(data: .object(AuthData.token(token)))
        case .create:
            let data = try AuthData.fields(call.data)
            let token = try await self.auth.createToken(
                for: identity, name: data["name"]!.stringValue!, expires: try AuthData.time(data["expires"], path: "/expires"),
                scopes: AuthData.strings(data["scopes"])
            )
            var reply = AuthData.token(token.record)
            reply["token"] = .string(token.value)
            return Reply(data: .object(reply))
        default:
            return Reply(data: .object(AuthData.token(try await self.auth.revokeToken(id: call.objectid!, by: identity))))
        }
    }
}
