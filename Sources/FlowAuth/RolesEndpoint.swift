public import FlowCore
public import FlowProtocol
import FlowSchema

/// `auth/roles` (SPEC §9.3), for admins: `{name, scopes, builtin}` records. The built-in `admin`
/// and `reader` cannot be changed or deleted.
public struct RolesEndpoint: Endpoint {
    public let definition: EndpointDefinition
    let auth: AuthService
    private let validators: [FlowProtocol.Method: JSONSchema]

    public init(auth: AuthService) {
        self.auth = auth
        let create: JSONValue = [
            "type": "object", "required": ["name", "scopes"], "additionalProperties": false,
            "properties": ["name": AuthData.roleName, "scopes": AuthData.scopeList(auth)],
        ]
        let update: JSONValue = [
            "type": "object", "required": ["scopes"], "additionalProperties": false, "properties": ["scopes": AuthData.scopeList(auth)],
        ]
        self.definition = EndpointDefinition(
            namespace: Namespace("auth/roles")!, title: "Roles", methods: [.list, .open, .create, .update, .delete], schema: create,
            methodSchemas: [.update: update], resultSchema: AuthData.roleResult
        )
        self.validators = AuthData.validators(self.definition)
    }

    public func validator(for method: FlowProtocol.Method) -> (any DataValidator)? { self.validators[method] }

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
