public import FlowCore
public import FlowProtocol
import FlowSchema

/// `auth/session` (SPEC §9.2): CREATE `{username, password}` logs in (public) and answers
/// `{token, expires, user, roles, scopes}`; on objectid `current`, OPEN is the caller's profile,
/// DELETE logs out, RUN `{old_password, new_password}` changes the caller's password.
public struct SessionEndpoint: Endpoint {
    public let definition: EndpointDefinition
    let auth: AuthService
    private let validators: [FlowProtocol.Method: JSONSchema]

    public init(auth: AuthService) {
        self.auth = auth
        let login: JSONValue = [
            "type": "object", "required": ["username", "password"], "additionalProperties": false,
            "properties": ["username": AuthData.username, "password": AuthData.givenPassword],
        ]
        let passwordChange: JSONValue = [
            "type": "object", "required": ["old_password", "new_password"], "additionalProperties": false,
            "properties": ["old_password": AuthData.givenPassword, "new_password": AuthData.password],
        ]
        self.definition = EndpointDefinition(
            namespace: Namespace("auth/session")!, title: "Sign in, your profile, sign out", methods: [.create, .open, .delete, .run],
            publicMethods: [.create], selfServiceMethods: [.open, .delete, .run], schema: login, methodSchemas: [.run: passwordChange],
            resultSchema: AuthData.sessionResult
        )
        self.validators = AuthData.validators(self.definition)
    }

    public func validator(for method: FlowProtocol.Method) -> (any DataValidator)? { self.validators[method] }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        if call.method == .create {
            let data = try AuthData.fields(call.data)
            let (token, identity) = try await self.auth.login(
                username: data["username"]!.stringValue!, password: data["password"]!.stringValue!, address: context.clientAddress
            )
            var reply = AuthData.profile(identity)
            reply["token"] = .string(token.value)
            reply["expires"] = token.record.expires.map(AuthData.timestamp) ?? .null
            return Reply(data: .object(reply))
        }
        guard call.objectid == "current" else { throw FlowError(.doNotExist, "Only the session 'current' exists") }
        switch call.method {
        case .open:
            var profile = AuthData.profile(context.identity)
            let token = context.identity.tokenID.flatMap { self.auth.token(id: $0, visibleTo: context.identity) }
            profile["token"] = token.map { .object(AuthData.token($0)) } ?? .null
            return Reply(data: .object(profile))
        case .delete:
            try await self.auth.logout(context.identity)
            return Reply(data: .object(AuthData.profile(context.identity)))
        default:
            let data = try AuthData.fields(call.data)
            try await self.auth.changeOwnPassword(
                context.identity, old: data["old_password"]!.stringValue!, new: data["new_password"]!.stringValue!, address: context.clientAddress
            )
            return Reply(data: ["changed": true])
        }
    }
}
