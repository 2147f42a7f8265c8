import FlowCore
import FlowProtocol
import FlowSchema
import Foundation

/// Reading and writing the `data` of the `auth/*` endpoints: schemas (also published in the
/// OpenAPI document), and the records as JSON — never with a password, hash or token digest.
enum AuthData {
    /// A schema compiled at startup; the schemas here are constants, so failing is a programming error.
    static func schema(_ value: JSONValue) -> JSONSchema {
        do { return try JSONSchema(value) } catch { preconditionFailure("built-in schema: \(error)") }
    }

    /// The validators of `definition`'s methods that carry data, compiled from the very schemas
    /// the OpenAPI document publishes: what is documented is exactly what is checked.
    static func validators(_ definition: EndpointDefinition) -> [FlowProtocol.Method: JSONSchema] {
        var validators: [FlowProtocol.Method: JSONSchema] = [:]
        for method in definition.methods where method.requiresData {
            if let schema = definition.schema(for: method) { validators[method] = Self.schema(schema) }
        }
        return validators
    }

    /// The members of `data`, which the dispatcher has checked against the method's schema
    /// (``Endpoint/validator(for:)``); every such schema requires an object.
    static func fields(_ data: JSONValue?) throws(FlowError) -> JSONObject {
        guard case .object(let object)? = data else {
            throw FlowError.validationFailed([DataProblem(path: "", message: "must be object, not \(data?.typeName ?? "missing")")])
        }
        return object
    }

    static func strings(_ value: JSONValue?) -> [String]? {
        value?.arrayValue?.compactMap(\.stringValue)
    }

    /// An RFC 3339 time in `data[key]` as seconds since 1970; nil when absent or null.
    static func time(_ value: JSONValue?, path: String) throws -> Double? {
        guard let text = value?.stringValue else { return nil }
        guard let seconds = RFC3339.seconds(text) else {
            throw FlowError.validationFailed([DataProblem(path: path, message: "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z")])
        }
        return seconds
    }

    static func timestamp(_ seconds: Double) -> JSONValue {
        .string(Date(timeIntervalSince1970: seconds).formatted(Date.ISO8601FormatStyle()))
    }

    static func user(_ user: UserRecord) -> JSONValue {
        ["username": .string(user.username), "roles": .array(user.roles.map(JSONValue.string)), "disabled": .bool(user.disabled), "created": Self.timestamp(user.created)]
    }

    static func role(_ role: RoleRecord) -> JSONValue {
        ["name": .string(role.name), "scopes": .array(role.scopes.map(JSONValue.string)), "builtin": .bool(role.builtin)]
    }

    /// A token's metadata (never its value or digest).
    static func token(_ token: TokenRecord) -> JSONObject {
        [
            "id": .string(token.id), "name": .string(token.name), "kind": .string(token.kind.rawValue), "user": .string(token.username),
            "scopes": token.scopes.map { .array($0.map(JSONValue.string)) } ?? .null,
            "expires": token.expires.map(Self.timestamp) ?? .null, "created": Self.timestamp(token.created),
        ]
    }

    static func profile(_ identity: Identity) -> JSONObject {
        [
            "user": identity.username.map(JSONValue.string) ?? .null,
            "roles": .array(identity.roles.map(JSONValue.string)),
            "scopes": .array(identity.scopes.map(JSONValue.string)),
        ]
    }

    static let time: JSONValue = ["type": "string", "format": "date-time"]

    /// What `auth/users` answers with.
    static let userResult: JSONValue = [
        "type": "object", "required": ["username", "roles", "disabled", "created"],
        "properties": ["username": ["type": "string"], "roles": Self.stringList, "disabled": ["type": "boolean"], "created": Self.time],
    ]

    /// What `auth/roles` answers with.
    static let roleResult: JSONValue = [
        "type": "object", "required": ["name", "scopes", "builtin"],
        "properties": ["name": ["type": "string"], "scopes": Self.stringList, "builtin": ["type": "boolean"]],
    ]

    /// What `auth/tokens` answers with (`token`, the value, only from CREATE).
    static let tokenResult: JSONValue = [
        "type": "object", "required": ["id", "name", "kind", "user", "scopes", "expires", "created"],
        "properties": [
            "id": ["type": "string"], "name": ["type": "string"], "kind": ["enum": ["session", "personal"]], "user": ["type": "string"],
            "scopes": ["type": ["array", "null"], "items": ["type": "string"]], "expires": ["type": ["string", "null"], "format": "date-time"],
            "created": Self.time, "token": ["type": "string"],
        ],
    ]

    /// What `auth/session` answers with: a profile, plus the token from CREATE (`changed` from RUN).
    static let sessionResult: JSONValue = [
        "type": "object",
        "properties": [
            "user": ["type": ["string", "null"]], "roles": Self.stringList, "scopes": Self.stringList,
            "token": ["type": ["string", "object", "null"]], "expires": ["type": ["string", "null"]], "changed": ["type": "boolean"],
        ],
    ]

    static let stringList: JSONValue = ["type": "array", "items": ["type": "string"]]
    /// A new password: 8 to 1024 characters (bcrypt, pre-hashed when longer than bcrypt reads).
    static let password: JSONValue = ["type": "string", "minLength": 8, "maxLength": 1024]
    /// A password being checked (a login, the old password): any, up to the longest one can set.
    static let givenPassword: JSONValue = ["type": "string", "maxLength": 1024]
    /// A user name (``AuthService/checkUsername(_:)``).
    static let username: JSONValue = ["type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"]
    /// A role name: one namespace segment (``AuthService/checkRoleName(_:)``).
    static let roleName: JSONValue = ["type": "string", "maxLength": 200, "pattern": "^[a-z0-9][a-z0-9_.-]*$"]
    /// A list of role names.
    static let roleList: JSONValue = ["type": "array", "maxItems": 64, "items": Self.roleName]

    private static let segmentPattern = "(\\*|[a-z0-9][a-z0-9_.-]*)"
    private static let namespacePattern = "\(segmentPattern)(/\(segmentPattern)){0,7}"
    private static let methodPattern = "(LIST|OPEN|UPDATE|DELETE|INDEX|CREATE|RUN)"
    /// A scope (SPEC §9.3, ``Scope``): `<namespace pattern>:<methods>` or `provide:<namespace pattern>`.
    static let scope: JSONValue = [
        "type": "string", "maxLength": .integer(Int64(AuthService.maxScopeLength)),
        "pattern": .string("^(provide:\(namespacePattern)|\(namespacePattern):(\\*|\(methodPattern)(,\(methodPattern))*))$"),
    ]

    /// A list of scopes as a request may give it: at most `max_scopes` (SPEC §11).
    static func scopeList(_ auth: AuthService, nullable: Bool = false) -> JSONValue {
        ["type": nullable ? ["array", "null"] : "array", "maxItems": .integer(Int64(auth.configuration.maxScopes)), "items": Self.scope]
    }
}
