import FlowProtocol

/// Storage for users, roles and tokens (SPEC §9). SQLite is the embedded backend; the daemon and
/// the `flowgate user|token` commands share it, so every change also advances ``AuthRecords/version``
/// and a running daemon notices changes made by another process.
///
/// Secrets are never stored in the clear: users carry a bcrypt hash, tokens the SHA-256 of their value.
public protocol AuthStore: Sendable {
    /// The change counter: it advances with every write to users, roles or tokens.
    func authVersion() async throws -> Int64
    /// Everything, read in one snapshot.
    func loadAuth() async throws -> AuthRecords

    /// Creates `user`; `ALREADY_EXISTS` when the name is taken.
    func insertUser(_ user: UserRecord) async throws
    /// Creates `user` only when there is no user at all (first start). Returns whether it did.
    func insertFirstUser(_ user: UserRecord) async throws -> Bool
    /// Replaces a user with what `change` makes of it, in one transaction; `DO_NOT_EXIST` when missing.
    func updateUser(_ username: String, change: @escaping @Sendable (UserRecord) throws -> UserRecord) async throws -> UserRecord
    /// Deletes a user and their tokens; `DO_NOT_EXIST` when missing.
    func deleteUser(_ username: String) async throws -> UserRecord

    /// Creates `role`; `ALREADY_EXISTS` when the name is taken.
    func insertRole(_ role: RoleRecord) async throws
    /// Replaces a role with what `change` makes of it; `DO_NOT_EXIST` when missing.
    func updateRole(_ name: String, change: @escaping @Sendable (RoleRecord) throws -> RoleRecord) async throws -> RoleRecord
    /// Deletes a role (and takes it from every user); `DO_NOT_EXIST` when missing.
    func deleteRole(_ name: String) async throws -> RoleRecord

    /// Stores a token's record (its digest, never its value), keeping its user at `limit` tokens
    /// of its kind at most (SPEC §11): a personal access token past the limit is `RATE_LIMITED`;
    /// a session past it ends the user's oldest sessions, so signing in always works.
    func insertToken(_ token: TokenRecord, limit: Int) async throws
    /// Deletes the token with `id`; nil when there is none.
    func deleteToken(id: String) async throws -> TokenRecord?
    /// Deletes every token that expired before `time` (seconds since 1970). Returns how many.
    func purgeTokens(expiredBefore time: Double) async throws -> Int
}

/// Everything an ``AuthStore`` holds, at one ``version``.
public struct AuthRecords: Sendable {
    public var version: Int64
    public var users: [UserRecord]
    public var roles: [RoleRecord]
    public var tokens: [TokenRecord]

    public init(version: Int64, users: [UserRecord], roles: [RoleRecord], tokens: [TokenRecord]) {
        self.version = version
        self.users = users
        self.roles = roles
        self.tokens = tokens
    }
}

/// A user (SPEC §9.1). `passwordHash` is bcrypt and never leaves the daemon.
public struct UserRecord: Sendable, Hashable {
    public var username: String
    public var passwordHash: String
    public var roles: [String]
    public var disabled: Bool
    /// Seconds since 1970.
    public var created: Double

    public init(username: String, passwordHash: String, roles: [String], disabled: Bool = false, created: Double) {
        self.username = username
        self.passwordHash = passwordHash
        self.roles = roles
        self.disabled = disabled
        self.created = created
    }
}

/// A named set of scopes (SPEC §9.3).
public struct RoleRecord: Sendable, Hashable {
    public var name: String
    public var scopes: [String]
    /// `admin` and `reader`: they cannot be deleted.
    public var builtin: Bool

    public init(name: String, scopes: [String], builtin: Bool = false) {
        self.name = name
        self.scopes = scopes
        self.builtin = builtin
    }
}

/// A session or personal access token (SPEC §9.2), as stored: the SHA-256 of its value, never the value.
public struct TokenRecord: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// From `CREATE auth/session`; ends with logout or expiry.
        case session
        /// A personal access token from `auth/tokens` or `flowgate token create`.
        case personal
    }

    /// Public identifier (DELETE takes it); not a secret.
    public var id: String
    /// SHA-256 of the token's value.
    public var digest: [UInt8]
    public var kind: Kind
    public var username: String
    public var name: String
    /// The scopes the token narrows its user's to; nil follows the user's roles.
    public var scopes: [String]?
    /// Seconds since 1970.
    public var created: Double
    /// Seconds since 1970; nil never expires.
    public var expires: Double?

    public init(id: String, digest: [UInt8], kind: Kind, username: String, name: String, scopes: [String]?, created: Double, expires: Double?) {
        self.id = id
        self.digest = digest
        self.kind = kind
        self.username = username
        self.name = name
        self.scopes = scopes
        self.created = created
        self.expires = expires
    }
}

/// How the stores keep a list of names (a user's roles, a role's or a token's scopes): a
/// compact JSON array of strings.
public enum NameList {
    public static func encode(_ names: [String]) -> String {
        String(decoding: JSONValue.array(names.map(JSONValue.string)).encoded(), as: UTF8.self)
    }

    public static func decode(_ text: String?) -> [String]? {
        guard let text, case .array(let items)? = try? JSONValue(parsing: text) else { return nil }
        return items.compactMap(\.stringValue)
    }
}

/// Everything the daemon keeps (SPEC §7–§9, §13): the embedded SQLite file, or the PostgreSQL
/// database several nodes share (SPEC §12).
public protocol GatewayStore: CollectionStore, ChangeLog, AuthStore {
    /// Whether the database answers (`/readyz`).
    func isHealthy() async -> Bool
}
