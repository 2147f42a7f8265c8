public import FlowCore
public import FlowProtocol
import FlowSchema

/// `auth/roles` (SPEC §9.3), for admins: `{name, scopes, builtin}` records. The built-in `admin`
/// and `reader` cannot be changed or deleted.
public struct RolesEndpoint: Endpoint {
    public let definition: EndpointDefinition
    let auth: AuthService
    private let create: JSONSchema
    private let update: JSONSchema

    public init(auth: AuthService) {
        self.auth = auth
        let create: JSONValue = [
            "type": "object", "required": ["name", "scopes"], "additionalProperties": false,
            "properties": ["name": ["type": "string"], "scopes": AuthData.scopeList(auth)],
        ]
        self.definition = EndpointDefinition(
            namespace: Namespace("auth/roles")!, title: "Roles", methods: [.list, .open, .create, .update, .delete], schema: create, resultSchema: AuthData.roleResult
        )
        self.create = AuthData.schema(create)
        self.update = AuthData.schema([
            "type": "object", "required": ["scopes"], "additionalProperties": false, "properties": ["scopes": AuthData.scopeList(auth)],
        ])
    }

    public func validator(for method: FlowProtocol.Method) -> (any DataValidator)? {
        method == .create ? self.create : self.update
    }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        switch call.method {
        case .list:
            return Reply(data: .array(self.auth.current.roles.values.sorted { $0.name < $1.name }.map(AuthData.role)))
        case .open:
            guard let role = self.auth.current.roles[call.objectid!] else { throw FlowError(.doNotExist, "Role does not exist") }
            return Reply(data: AuthData.role(role))
        case .create:
            let data = try AuthData.fields(call.data)
            return Reply(data: AuthData.role(try await self.auth.createRole(name: data["name"]!.stringValue!, scopes: AuthData.strings(data["scopes"])!)))
        case .update:
            let data = try AuthData.fields(call.data)
            return Reply(data: AuthData.role(try await self.auth.updateRole(name: call.objectid!, scopes: AuthData.strings(data["scopes"])!)))
        default:
            return Reply(data: AuthData.role(try await self.auth.deleteRole(name: call.objectid!)))
        }
    }
}
