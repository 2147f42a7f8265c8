public import FlowCore
public import FlowProtocol

/// Tokens from a table; no credential is no identity; anything else is `UNAUTHENTICATED`.
/// Remembers every credential it was shown, so tests can check which one a transport passed.
public final class TokenTableAuthenticator: Authenticator {
    let tokens: [String: Identity]
    let users: [String: (password: String, identity: Identity)]
    private let seen = Locked<[Credential?]>([])

    public init(tokens: [String: Identity], users: [String: (password: String, identity: Identity)] = [:]) {
        self.tokens = tokens
        self.users = users
    }

    /// The credentials presented so far, in order.
    public var credentialsSeen: [Credential?] { self.seen.withLock { $0 } }

    public func authenticate(_ credential: Credential?, origin: CallOrigin) async throws(FlowError) -> Identity? {
        self.seen.withLock { $0.append(credential) }
        switch credential {
        case nil: return nil
        case .token(let token)?:
            guard let identity = self.tokens[token] else { throw FlowError(.unauthenticated, "Invalid or expired token") }
            return identity
        case .basic(let username, let password)?:
            guard let user = self.users[username], user.password == password else {
                throw FlowError(.unauthenticated, "Invalid username or password")
            }
            return user.identity
        }
    }
}

/// Allows a call when the identity has the scope `<namespace>:<METHOD>` or `*:*`.
public struct ExactScopePolicy: AuthorizationPolicy {
    public init() {}

    public func authorize(_ identity: Identity, method: Method, objectid: String?, endpoint: EndpointDefinition) throws(FlowError) {
        let needed = endpoint.scope(for: method)
        guard identity.scopes.contains(needed) || identity.scopes.contains("*:*") else {
            throw FlowError(.forbidden, "Not allowed to \(method.rawValue) \(endpoint.namespace)")
        }
    }
}

extension Identity {
    /// A user allowed everything.
    public static let testAdmin = Identity(username: "admin", roles: ["admin"], scopes: ["*:*"])
    /// A user allowed only to LIST and OPEN test/echo.
    public static let testReader = Identity(username: "reader", roles: ["reader"], scopes: ["test/echo:LIST", "test/echo:OPEN"])
}
