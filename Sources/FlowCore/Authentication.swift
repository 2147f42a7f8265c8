public import FlowProtocol

/// Establishes who is calling (SPEC §9). The dispatcher asks it once per call, so an
/// implementation that wants revocation to act at once (SPEC §5.3) checks on every call and
/// caches what is expensive.
///
/// ```swift
/// struct StaticTokens: Authenticator {
///     let users: [String: Identity]
///     func authenticate(_ credential: Credential?, origin: CallOrigin) async throws(FlowError) -> Identity? {
///         guard case .token(let token)? = credential else { return nil }
///         guard let identity = users[token] else { throw FlowError(.unauthenticated, "Invalid token") }
///         return identity
///     }
/// }
/// ```
public protocol Authenticator: Sendable {
    /// The identity behind `credential`; nil when there is none (no credential).
    /// Throws `UNAUTHENTICATED` for a wrong, expired or revoked credential (or `RATE_LIMITED`).
    func authenticate(_ credential: Credential?, origin: CallOrigin) async throws(FlowError) -> Identity?
}

/// Decides whether an identity may call a method of an endpoint (SPEC §9.3). Runs before the
/// handler, for every call that is not to a public method.
public protocol AuthorizationPolicy: Sendable {
    /// Throws `FORBIDDEN` when no scope of `identity` allows the call.
    func authorize(_ identity: Identity, method: Method, objectid: String?, endpoint: EndpointDefinition) throws(FlowError)
}

/// Open access: every call is admitted as the anonymous identity. What `flowgate serve` runs with
/// until real authentication exists; the daemon says so loudly at startup.
public struct OpenAccessAuthenticator: Authenticator {
    public init() {}
    public func authenticate(_ credential: Credential?, origin: CallOrigin) async throws(FlowError) -> Identity? {
        .anonymous
    }
}

/// Open access: every identity may call everything. Pairs with ``OpenAccessAuthenticator``.
public struct OpenAccessPolicy: AuthorizationPolicy {
    public init() {}
    public func authorize(_ identity: Identity, method: Method, objectid: String?, endpoint: EndpointDefinition) throws(FlowError) {}
}

/// SPEC §9.3: a call needs a scope of the caller that allows its namespace and method — the
/// endpoint's own scope for the method when it declares one. Self-service methods only need a
/// signed-in caller.
public struct ScopePolicy: AuthorizationPolicy {
    public init() {}

    public func authorize(_ identity: Identity, method: Method, objectid: String?, endpoint: EndpointDefinition) throws(FlowError) {
        if endpoint.selfServiceMethods.contains(method) && !identity.isAnonymous { return }
        let allowed: Bool
        if let override = endpoint.scopeOverrides[method] {
            allowed = identity.grants.cover([override])
        } else {
            allowed = identity.grants.allow(method, on: endpoint.namespace)
        }
        guard allowed else {
            throw FlowError(.forbidden, "Not allowed to \(method.rawValue) \(endpoint.namespace)")
        }
    }
}

/// An authenticator whose credentials can stop being valid while a WebSocket uses them
/// (SPEC §5.3): the gateway closes a socket with 4001 once the credential it was opened with is revoked.
public protocol RevocableCredentials: Sendable {
    /// Whether `credential` was revoked, has expired, or its user was disabled or deleted.
    /// Cheap (no password hashing); false when it cannot tell.
    func isRevoked(_ credential: Credential) -> Bool
    /// Who `credential` stands for now, with the scopes they have now (roles change); nil when it
    /// was revoked. Cheap (no password hashing): for what was authenticated before.
    func currentIdentity(_ credential: Credential) -> Identity?
    /// Calls `body` after every change that may have revoked a credential, until the task is cancelled.
    func watchRevocations(_ body: @Sendable () async -> Void) async
}
