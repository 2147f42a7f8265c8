public import FlowCore
import FlowProtocol
import Foundation
import Logging

/// Every change to users, roles and tokens, for the `auth/*` endpoints and the CLI alike. Each one
/// goes to the store, reloads the directory (so the next call sees it), and leaves an audit line
/// (never with a token value or a password).
extension AuthService {
    /// A token just created: its value exists only here, to be shown once.
    public struct NewToken: Sendable {
        public let value: String
        public let record: TokenRecord
    }

    // MARK: Sessions

    /// `CREATE auth/session`: checks the password (rate-limited) and opens a session.
    public func login(username: String, password: String, address: String?) async throws -> (NewToken, Identity) {
        let user = try await self.verifyPassword(username: username, password: password, address: address, via: "session")
        let expires = self.now() + self.configuration.sessionLifetime / .seconds(1)
        let token = try await self.issue(kind: .session, username: user.record.username, name: "session", scopes: nil, expires: expires)
        self.audit("login", user: username, token: token.record.id, address: address, via: "session")
        return (token, user.identity)
    }

    /// `DELETE auth/session current`: ends the session that made the call (a call made with
    /// anything else has no session: `DO_NOT_EXIST`).
    public func logout(_ identity: Identity) async throws {
        guard let id = identity.tokenID, self.current.tokens[id]?.record.kind == .session else {
            throw FlowError(.doNotExist, "The call was not made with a session token: there is no session to end")
        }
        _ = try await self.store.deleteToken(id: id)
        try await self.refresh()
        self.audit("logout", user: identity.username, token: id)
    }

    /// `RUN auth/session current`: a user changes their own password with the old one.
    /// Their other sessions end; personal access tokens stay.
    public func changeOwnPassword(_ identity: Identity, old: String, new: String, address: String?) async throws {
        guard let username = identity.username else { throw FlowError(.unauthenticated, "Authentication required") }
        try Self.checkPassword(new, path: "/new_password")
        _ = try await self.verifyPassword(username: username, password: old, address: address, via: "password change")
        try await self.setPassword(username: username, password: new, keepingSession: identity.tokenID)
    }

    // MARK: Tokens

    /// `CREATE auth/tokens`: a personal access token for the caller. `scopes` may narrow what
    /// the caller may do, never widen it; without them the token follows its user's roles, or
    /// keeps the caller's own narrowing when the caller used a narrowed token. The token lives
    /// no longer than ``AuthConfiguration/tokenMaxLifetime``, nor than the token that made it.
    public func createToken(for identity: Identity, name: String, expires: Double?, scopes: [String]?) async throws -> NewToken {
        try await self.createToken(for: identity, name: name, expires: try self.lifetime(expires, for: identity), scopes: scopes, byOperator: false)
    }

    /// `flowgate token create`: a personal access token for `username`, made by the operator,
    /// who may give it any lifetime (none included).
    public func createToken(username: String, name: String, expires: Double?, scopes: [String]?) async throws -> NewToken {
        guard let user = self.current.users[username] else { throw FlowError(.doNotExist, "User does not exist") }
        return try await self.createToken(for: user.identity, name: name, expires: try self.future(expires), scopes: scopes, byOperator: true)
    }

    private func createToken(for identity: Identity, name: String, expires: Double?, scopes: [String]?, byOperator: Bool) async throws -> NewToken {
        guard let username = identity.username else { throw FlowError(.unauthenticated, "Authentication required") }
        let parsed = try scopes.map(self.parseScopes)
        if let parsed, !identity.grants.cover(parsed) {
            throw FlowError(.forbidden, "A token cannot have scopes its creator does not have")
        }
        let effective = scopes ?? identity.grants.narrowedTo?.map(\.description)
        let token = try await self.issue(kind: .personal, username: username, name: name, scopes: effective, expires: expires)
        self.audit("token created", user: username, token: token.record.id, via: byOperator ? "operator" : nil)
        return token
    }

    /// SPEC §9.2: when a new token made over the API expires. A password sign-in (a session, or
    /// Basic) may ask for any time within the maximum lifetime, which is also the default. A
    /// personal access token may make only tokens that expire, and no later than itself: a stolen
    /// token cannot be made permanent. A later time than allowed is shortened to the limit (the
    /// answer shows the expiry the token has); a time in the past is `VALIDATION_FAILED`.
    func lifetime(_ requested: Double?, for identity: Identity) throws -> Double? {
        let now = self.now()
        let maximum = self.configuration.tokenMaxLifetime.map { now + $0 / .seconds(1) }
        var limit = maximum
        var madeByToken = false
        if let id = identity.tokenID, let creator = self.current.tokens[id]?.record, creator.kind == .personal {
            madeByToken = true
            if let creatorExpiry = creator.expires { limit = min(limit ?? creatorExpiry, creatorExpiry) }
        }
        guard let requested else {
            if madeByToken && limit == nil {
                throw FlowError.validationFailed([DataProblem(path: "/expires", message: "is required: a token can only make tokens that expire")])
            }
            return limit
        }
        _ = try self.future(requested)
        return limit.map { min($0, requested) } ?? requested
    }

    /// `DELETE auth/tokens <id>`: revokes a token. `by` nil is the operator (CLI); a caller who
    /// may not manage every token only finds their own.
    public func revokeToken(id: String, by identity: Identity?) async throws -> TokenRecord {
        guard let token = self.current.tokens[id], identity.map({ self.mayManage(token.record, $0, .delete) }) ?? true,
            let deleted = try await self.store.deleteToken(id: id)
        else {
            throw FlowError(.doNotExist, "Token does not exist")
        }
        try await self.refresh()
        self.audit("token revoked", user: identity?.username ?? "(operator)", token: id, owner: deleted.username)
        return deleted
    }

    /// The tokens `identity` may see: their own, or all for whoever may LIST `auth/tokens`.
    public func tokens(visibleTo identity: Identity) -> [TokenRecord] {
        self.current.tokens.values.map(\.record).filter { self.mayManage($0, identity, .list) }.sorted { $0.created < $1.created }
    }

    /// The token `id` if `identity` may see it.
    public func token(id: String, visibleTo identity: Identity) -> TokenRecord? {
        self.current.tokens[id].map(\.record).flatMap { self.mayManage($0, identity, .open) ? $0 : nil }
    }

    func mayManage(_ token: TokenRecord, _ identity: Identity, _ method: FlowProtocol.Method) -> Bool {
        token.username == identity.username || identity.grants.allow(method, on: Self.tokensNamespace)
    }

    static let tokensNamespace = Namespace("auth/tokens")!

    private func issue(kind: TokenRecord.Kind, username: String, name: String, scopes: [String]?, expires: Double?) async throws -> NewToken {
        let value = Secrets.newToken(prefix: kind == .session ? "fgses_" : "fgpat_")
        let record = TokenRecord(
            id: UUID().uuidString.lowercased(), digest: Secrets.digest(value), kind: kind, username: username, name: name,
            scopes: scopes, created: self.now(), expires: expires
        )
        let limit = kind == .session ? self.configuration.maxSessionsPerUser : self.configuration.maxTokensPerUser
        try await self.store.insertToken(record, limit: limit)
        try await self.refresh()
        return NewToken(value: value, record: record)
    }

    private func future(_ expires: Double?) throws -> Double? {
        guard let expires else { return nil }
        guard expires > self.now() else {
            throw FlowError.validationFailed([DataProblem(path: "/expires", message: "must be in the future")])
        }
        return expires
    }

    // MARK: Users

    /// Creates a user (`auth/users` CREATE, `flowgate user add`).
    public func createUser(username: String, password: String, roles: [String], disabled: Bool = false) async throws -> UserRecord {
        try Self.checkUsername(username)
        try Self.checkPassword(password, path: "/password")
        try self.checkRoles(roles)
        let hash = try await self.hashPassword(password)
        let user = UserRecord(username: username, passwordHash: hash, roles: roles, disabled: disabled, created: self.now())
        try await self.store.insertUser(user)
        try await self.refresh()
        self.audit("user created", user: username)
        return user
    }

    /// Changes a user (`auth/users` UPDATE): any of password, roles, disabled. A new password
    /// ends the user's sessions, except `keepingSession`.
    public func updateUser(
        username: String, password: String?, roles: [String]?, disabled: Bool?, keepingSession: String? = nil
    ) async throws -> UserRecord {
        if let password { try Self.checkPassword(password, path: "/password") }
        if let roles { try self.checkRoles(roles) }
        let hash: String? = if let password { try await self.hashPassword(password) } else { nil }
        let user = try await self.store.updateUser(username) { user in
            var user = user
            if let hash { user.passwordHash = hash }
            if let roles { user.roles = roles }
            if let disabled { user.disabled = disabled }
            return user
        }
        if password != nil { try await self.endSessions(of: username, except: keepingSession) }
        try await self.refresh()
        self.audit(password == nil ? "user changed" : "password changed", user: username)
        return user
    }

    /// Sets a user's password (`flowgate user passwd`); their sessions end except `keepingSession`.
    public func setPassword(username: String, password: String, keepingSession: String? = nil) async throws {
        _ = try await self.updateUser(username: username, password: password, roles: nil, disabled: nil, keepingSession: keepingSession)
    }

    /// Deletes a user and every token of theirs.
    public func deleteUser(username: String) async throws -> UserRecord {
        let user = try await self.store.deleteUser(username)
        try await self.refresh()
        self.audit("user deleted", user: username)
        return user
    }

    private func endSessions(of username: String, except keep: String?) async throws {
        for token in self.current.tokens.values where token.record.username == username && token.record.kind == .session && token.record.id != keep {
            _ = try await self.store.deleteToken(id: token.record.id)
        }
    }

    // MARK: Roles

    public func createRole(name: String, scopes: [String]) async throws -> RoleRecord {
        try Self.checkRoleName(name)
        _ = try self.parseScopes(scopes)
        let role = RoleRecord(name: name, scopes: scopes)
        try await self.store.insertRole(role)
        try await self.refresh()
        self.audit("role created", role: name)
        return role
    }

    public func updateRole(name: String, scopes: [String]) async throws -> RoleRecord {
        _ = try self.parseScopes(scopes)
        let role = try await self.store.updateRole(name) { role in
            guard !role.builtin else { throw FlowError(.forbidden, "Built-in role '\(name)' cannot be changed") }
            var role = role
            role.scopes = scopes
            return role
        }
        try await self.refresh()
        self.audit("role changed", role: name)
        return role
    }

    public func deleteRole(name: String) async throws -> RoleRecord {
        if self.current.roles[name]?.builtin == true { throw FlowError(.forbidden, "Built-in role '\(name)' cannot be deleted") }
        let role = try await self.store.deleteRole(name)
        try await self.refresh()
        self.audit("role deleted", role: name)
        return role
    }

    // MARK: Checks

    /// The scopes of a token or role: at most `max_scopes` of them, each well formed.
    func parseScopes(_ texts: [String]) throws(FlowError) -> [Scope] {
        guard texts.count <= self.configuration.maxScopes else {
            throw FlowError.validationFailed([DataProblem(path: "/scopes", message: "must have at most \(self.configuration.maxScopes) items")])
        }
        var scopes: [Scope] = []
        var problems: [DataProblem] = []
        for (index, text) in texts.enumerated() {
            if text.unicodeScalars.count <= Self.maxScopeLength, let scope = Scope(text) { scopes.append(scope) } else {
                problems.append(DataProblem(path: "/scopes/\(index)", message: "is not a scope ('<namespace pattern>:<METHODS>' or 'provide:<namespace pattern>')"))
            }
        }
        guard problems.isEmpty else { throw FlowError.validationFailed(problems) }
        return scopes
    }

    static func checkUsername(_ username: String) throws(FlowError) {
        let allowed = username.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || "_.@-".utf8.contains(byte)
        }
        guard allowed, (1...64).contains(username.utf8.count) else {
            throw FlowError.validationFailed([DataProblem(path: "/username", message: "must be 1-64 letters, digits or _ . @ -")])
        }
    }

    static func checkRoleName(_ name: String) throws(FlowError) {
        guard Namespace(name)?.rawValue == name, !name.contains("/") else {
            throw FlowError.validationFailed([DataProblem(path: "/name", message: "must be lower-case letters, digits, _ . - (starting with a letter or digit)")])
        }
    }

    /// The longest scope accepted, in characters.
    public static let maxScopeLength = 200

    /// A new password: 8 to 1024 characters (``Secrets/bcryptInput(_:)`` makes any length safe).
    static func checkPassword(_ password: String, path: String) throws(FlowError) {
        guard (8...1024).contains(password.unicodeScalars.count) else {
            throw FlowError.validationFailed([DataProblem(path: path, message: "must be 8 to 1024 characters long")])
        }
    }

    /// Roles a user is given must exist: one that does not is `DO_NOT_EXIST`.
    func checkRoles(_ roles: [String]) throws(FlowError) {
        let known = self.current.roles
        if let missing = roles.first(where: { known[$0] == nil }) {
            throw FlowError(.doNotExist, "Role '\(missing.prefix(80))' does not exist")
        }
    }

    func audit(
        _ event: String, user: String? = nil, token: String? = nil, owner: String? = nil, role: String? = nil, address: String? = nil, via: String? = nil
    ) {
        var metadata: Logger.Metadata = ["flow.audit": .string(event)]
        if let via { metadata["flow.auth.via"] = .string(via) }
        if let user { metadata["flow.user"] = .string(user) }
        if let token { metadata["flow.token.id"] = .string(token) }
        if let owner { metadata["flow.token.owner"] = .string(owner) }
        if let role { metadata["flow.role"] = .string(role) }
        if let address { metadata["flow.client"] = .string(address) }
        self.logger.notice("audit", metadata: metadata)
    }
}
