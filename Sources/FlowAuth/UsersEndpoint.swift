public import FlowCore
public import FlowProtocol
import FlowSchema

/// `auth/users` (SPEC §9.4), for admins: `{username, roles, disabled, created}` records. CREATE
/// takes `{username, password, roles?, disabled?}`, UPDATE any of `{password, roles, disabled}`.
/// The password and its hash never come back.
public struct UsersEndpoint: Endpoint {
    public let definition: EndpointDefinition
    let auth: AuthService
    private let validators: [FlowProtocol.Method: JSONSchema]

    public init(auth: AuthService) {
        self.auth = auth
        let properties: JSONObject = [
            "username": AuthData.username, "password": AuthData.password, "roles": AuthData.roleList, "disabled": ["type": "boolean"],
        ]
        let create: JSONValue = ["type": "object", "required": ["username", "password"], "additionalProperties": false, "properties": .object(properties)]
        var updatable = properties
        updatable["username"] = nil
        self.definition = EndpointDefinition(
            namespace: Namespace("auth/users")!, title: "Users", methods: [.list, .open, .create, .update, .delete], schema: create,
            methodSchemas: [.update: ["type": "object", "additionalProperties": false, "properties": .object(updatable)]],
            resultSchema: AuthData.userResult
        )
        self.validators = AuthData.validators(self.definition)
    }

    public func validator(for method: FlowProtocol.Method) -> (any DataValidator)? { self.validators[method] }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        switch call.method {
        case .list:
            return Reply(data: .array(self.auth.current.users.values.map(\.record).sorted { $0.username < $1.username }.map(AuthData.user)))
        case .open:
            guard let user = self.auth.current.users[call.objectid!] else { throw FlowError(.doNotExist, "User does not exist") }
            return Reply(data: AuthData.user(user.record))
        case .create:
            let data = try AuthData.fields(call.data)
            let user = try await self.auth.createUser(
                username: data["username"]!.stringValue!, password: data["password"]!.stringValue!,
                roles: AuthData.strings(data["roles"]) ?? [], disabled: data["disabled"] == .bool(true)
            )
            return Reply(data: AuthData.user(user))
        case .update:
            let data = try AuthData.fields(call.data)
            var disabled: Bool?
            if case .bool(let flag)? = data["disabled"] { disabled = flag }
            let user = try await self.auth.updateUser(
                username: call.objectid!, password: data["password"]?.stringValue, roles: AuthData.strings(data["roles"]), disabled: disabled
            )
            return Reply(data: AuthData.user(user))
        default:
            return Reply(data: AuthData.user(try await self.auth.deleteUser(username: call.objectid!)))
        }
    }
}
