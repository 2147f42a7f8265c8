import FlowCore
import FlowProtocol

/// An immutable, indexed copy of the users, roles and tokens at one store version: what every
/// call is authenticated against without touching the database. Built once per change.
final class AuthDirectory: Sendable {
    struct User: Sendable {
        let record: UserRecord
        /// The user's identity with the scopes of their roles (not narrowed by a token).
        let identity: Identity
    }

    struct Token: Sendable {
        let record: TokenRecord
        /// The identity of a call made with this token (narrowed when the token has scopes).
        let identity: Identity
    }

    let version: Int64
    let users: [String: User]
    let roles: [String: RoleRecord]
    /// The tokens of enabled users, by the first 8 bytes of their digest (a table key; the full
    /// digest is compared after). A disabled user's tokens are left out, so a call checks no user.
    private let tokensByPrefix: [UInt64: [Token]]
    let tokens: [String: Token]
    /// The soonest expiry of any token (seconds since 1970), for noticing expiries.
    let nextExpiry: Double?

    init(_ records: AuthRecords) {
        self.version = records.version
        self.roles = Dictionary(records.roles.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var users: [String: User] = [:]
        for record in records.users {
            var scopes: [Scope] = []
            for role in record.roles {
                for text in self.roles[role]?.scopes ?? [] {
                    if let scope = Scope(text), !scopes.contains(scope) { scopes.append(scope) }
                }
            }
            users[record.username] = User(record: record, identity: Identity(username: record.username, roles: record.roles, grants: Grants(scopes)))
        }
        self.users = users
        var byPrefix: [UInt64: [Token]] = [:]
        var byID: [String: Token] = [:]
        var nextExpiry: Double?
        for record in records.tokens {
            guard let user = users[record.username] else { continue }
            var grants = user.identity.grants
            grants.narrowedTo = record.scopes.map { $0.compactMap(Scope.init) }
            let token = Token(record: record, identity: Identity(username: record.username, roles: user.record.roles, grants: grants, tokenID: record.id))
            if !user.record.disabled { byPrefix[Secrets.prefix(record.digest), default: []].append(token) }
            byID[record.id] = token
            if let expires = record.expires { nextExpiry = min(nextExpiry ?? expires, expires) }
        }
        self.tokensByPrefix = byPrefix
        self.tokens = byID
        self.nextExpiry = nextExpiry
    }

    /// The token of an enabled user whose digest is `digest`, compared in constant time.
    func token(digest: [UInt8]) -> Token? {
        self.tokensByPrefix[Secrets.prefix(digest)]?.first { Secrets.constantTimeEqual($0.record.digest, digest) }
    }

    /// The identity behind a token digest if the token is valid at `now` (and its user enabled).
    func identity(digest: [UInt8], now: Double) -> Identity? {
        guard let token = self.token(digest: digest), token.record.isValid(at: now) else { return nil }
        return token.identity
    }
}

extension TokenRecord {
    /// Whether the token has not expired at `now`.
    func isValid(at now: Double) -> Bool {
        self.expires.map { $0 > now } ?? true
    }
}
