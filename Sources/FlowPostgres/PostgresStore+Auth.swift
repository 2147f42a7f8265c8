public import FlowCore
import FlowProtocol
import Foundation
import Logging
import PostgresNIO

/// Users, roles and tokens (SPEC §9) shared by every node (SPEC §12).
///
/// As on SQLite, triggers advance `auth_version` with every row written, whoever writes it, and
/// each node polls that one row (``AuthStore/authVersion()``, every `refreshInterval`, 250 ms by
/// default): a revocation, a password or role change or a disabled user made through one node
/// is in force on every node within that interval plus one reload. The triggers also
/// `NOTIFY flowgate_auth`, for a listener that wants to know sooner.
///
/// Writes that read before they write lock what they read: a user's row for a token (so two
/// nodes issuing sessions at once keep the per-user limit), the version row for the first
/// user (so two nodes starting together create one `admin`).
extension PostgresStore: AuthStore {
    static let authMigration: [String] = [
        """
        CREATE TABLE auth_user (
            username text PRIMARY KEY,
            password_hash text NOT NULL,
            roles text NOT NULL,
            disabled boolean NOT NULL DEFAULT false,
            created double precision NOT NULL
        )
        """,
        "CREATE TABLE auth_role (name text PRIMARY KEY, scopes text NOT NULL, builtin boolean NOT NULL DEFAULT false)",
        """
        CREATE TABLE auth_token (
            id text PRIMARY KEY,
            digest bytea NOT NULL UNIQUE,
            kind text NOT NULL,
            username text NOT NULL REFERENCES auth_user (username) ON DELETE CASCADE ON UPDATE CASCADE,
            name text NOT NULL,
            scopes text,
            created double precision NOT NULL,
            expires double precision
        )
        """,
        "CREATE INDEX auth_token_by_user ON auth_token (username, kind, created)",
        "CREATE INDEX auth_token_by_expiry ON auth_token (expires) WHERE expires IS NOT NULL",
        "CREATE TABLE auth_version (one boolean PRIMARY KEY DEFAULT true CHECK (one), value bigint NOT NULL)",
        "INSERT INTO auth_version (value) VALUES (0)",
        """
        CREATE FUNCTION flowgate_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE auth_version SET value = value + 1;
            PERFORM pg_notify('flowgate_auth', '');
            RETURN NULL;
        END $$
        """,
    ] + ["auth_user", "auth_role", "auth_token"].map { table in
        "CREATE TRIGGER \(table)_changed AFTER INSERT OR UPDATE OR DELETE ON \(table) FOR EACH ROW EXECUTE FUNCTION flowgate_auth_changed()"
    }

    public func authVersion() async throws -> Int64 {
        try await self.guarded {
            try await self.client.query("SELECT value FROM auth_version", logger: self.logger).decode(Int64.self).first { _ in true } ?? 0
        }
    }

    public func loadAuth() async throws -> AuthRecords {
        try await self.transaction { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: self.logger)
            let version = try await connection.query("SELECT value FROM auth_version", logger: self.logger).decode(Int64.self).first { _ in true } ?? 0
            var users: [UserRecord] = []
            for try await row in try await connection.query("SELECT \(unescaped: Self.userColumns) FROM auth_user ORDER BY username", logger: self.logger)
                .decode(UserRow.self)
            {
                users.append(Self.user(row))
            }
            var roles: [RoleRecord] = []
            for try await (name, scopes, builtin) in try await connection.query("SELECT name, scopes, builtin FROM auth_role ORDER BY name", logger: self.logger)
                .decode((String, String, Bool).self)
            {
                roles.append(RoleRecord(name: name, scopes: NameList.decode(scopes) ?? [], builtin: builtin))
            }
            var tokens: [TokenRecord] = []
            for try await row in try await connection.query("SELECT \(unescaped: Self.tokenColumns) FROM auth_token ORDER BY created", logger: self.logger)
                .decode(TokenRow.self)
            {
                tokens.append(Self.token(row))
            }
            return AuthRecords(version: version, users: users, roles: roles, tokens: tokens)
        }
    }

    // MARK: Users

    public func insertUser(_ user: UserRecord) async throws {
        try await self.transaction { connection in try await Self.insert(connection, user, logger: self.logger) }
    }

    public func insertFirstUser(_ user: UserRecord) async throws -> Bool {
        try await self.transaction { connection in
            // Nodes starting together: the second waits here, then finds the first one's user.
            try await connection.query("SELECT value FROM auth_version FOR UPDATE", logger: self.logger)
            let any = try await connection.query("SELECT 1 FROM auth_user LIMIT 1", logger: self.logger).decode(Int32.self).first { _ in true }
            guard any == nil else { return false }
            try await Self.insert(connection, user, logger: self.logger)
            return true
        }
    }

    public func updateUser(_ username: String, change: @escaping @Sendable (UserRecord) throws -> UserRecord) async throws -> UserRecord {
        try await self.transaction { connection in
            let row = try await connection.query(
                "SELECT \(unescaped: Self.userColumns) FROM auth_user WHERE username = \(username) FOR UPDATE", logger: self.logger
            ).decode(UserRow.self).first { _ in true }
            guard let row else { throw FlowError(.doNotExist, "User does not exist") }
            var user = try change(Self.user(row))
            user.username = username
            try await connection.query(
                """
                UPDATE auth_user SET password_hash = \(user.passwordHash), roles = \(NameList.encode(user.roles)), disabled = \(user.disabled)
                WHERE username = \(username)
                """,
                logger: self.logger
            )
            return user
        }
    }

    public func deleteUser(_ username: String) async throws -> UserRecord {
        try await self.transaction { connection in
            let row = try await connection.query(
                "DELETE FROM auth_user WHERE username = \(username) RETURNING \(unescaped: Self.userColumns)", logger: self.logger
            ).decode(UserRow.self).first { _ in true }
            guard let row else { throw FlowError(.doNotExist, "User does not exist") }
            return Self.user(row)
        }
    }

    // MARK: Roles

    public func insertRole(_ role: RoleRecord) async throws {
        try await self.transaction { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO auth_role (name, scopes, builtin) VALUES (\(role.name), \(NameList.encode(role.scopes)), \(role.builtin))
                ON CONFLICT DO NOTHING RETURNING name
                """,
                logger: self.logger
            ).decode(String.self).first { _ in true }
            guard inserted != nil else { throw FlowError(.alreadyExists, "A role with that name already exists") }
        }
    }

    public func updateRole(_ name: String, change: @escaping @Sendable (RoleRecord) throws -> RoleRecord) async throws -> RoleRecord {
        try await self.transaction { connection in
            let row = try await connection.query("SELECT name, scopes, builtin FROM auth_role WHERE name = \(name) FOR UPDATE", logger: self.logger)
                .decode((String, String, Bool).self).first { _ in true }
            guard let row else { throw FlowError(.doNotExist, "Role does not exist") }
            var role = try change(RoleRecord(name: row.0, scopes: NameList.decode(row.1) ?? [], builtin: row.2))
            role.name = name
            try await connection.query("UPDATE auth_role SET scopes = \(NameList.encode(role.scopes)) WHERE name = \(name)", logger: self.logger)
            return role
        }
    }

    public func deleteRole(_ name: String) async throws -> RoleRecord {
        try await self.transaction { connection in
            let row = try await connection.query("DELETE FROM auth_role WHERE name = \(name) RETURNING name, scopes, builtin", logger: self.logger)
                .decode((String, String, Bool).self).first { _ in true }
            guard let row else { throw FlowError(.doNotExist, "Role does not exist") }
            // Nobody keeps a role that is gone (a later role of the same name must not inherit them).
            var holders: [(String, [String])] = []
            for try await (username, roles) in try await connection.query(
                "SELECT username, roles FROM auth_user WHERE roles::jsonb ? \(name) FOR UPDATE", logger: self.logger
            ).decode((String, String).self) {
                holders.append((username, NameList.decode(roles) ?? []))
            }
            for (username, roles) in holders {
                try await connection.query(
                    "UPDATE auth_user SET roles = \(NameList.encode(roles.filter { $0 != name })) WHERE username = \(username)", logger: self.logger
                )
            }
            return RoleRecord(name: row.0, scopes: NameList.decode(row.1) ?? [], builtin: row.2)
        }
    }

    // MARK: Tokens

    public func insertToken(_ token: TokenRecord, limit: Int) async throws {
        try await self.transaction { connection in
            // The user's row, locked: two nodes issuing this user's tokens at once take turns.
            let exists = try await connection.query("SELECT 1 FROM auth_user WHERE username = \(token.username) FOR UPDATE", logger: self.logger)
                .decode(Int32.self).first { _ in true }
            guard exists != nil else { throw FlowError(.doNotExist, "User does not exist") }
            let held = try await connection.query(
                "SELECT count(*) FROM auth_token WHERE username = \(token.username) AND kind = \(token.kind.rawValue)", logger: self.logger
            ).decode(Int64.self).first { _ in true } ?? 0
            if held >= limit {
                guard token.kind == .session else {
                    throw FlowError(.rateLimited, "The user has \(held) personal access tokens, the most allowed; revoke one first")
                }
                try await connection.query(
                    """
                    DELETE FROM auth_token WHERE id IN (
                        SELECT id FROM auth_token WHERE username = \(token.username) AND kind = 'session' ORDER BY created LIMIT \(held - Int64(limit) + 1))
                    """,
                    logger: self.logger
                )
            }
            try await connection.query(
                """
                INSERT INTO auth_token (id, digest, kind, username, name, scopes, created, expires)
                VALUES (\(token.id), \(ByteBuffer(bytes: token.digest)), \(token.kind.rawValue), \(token.username), \(token.name),
                        \(token.scopes.map(NameList.encode)), \(token.created), \(token.expires))
                """,
                logger: self.logger
            )
        }
    }

    public func deleteToken(id: String) async throws -> TokenRecord? {
        try await self.guarded {
            try await self.client.query("DELETE FROM auth_token WHERE id = \(id) RETURNING \(unescaped: Self.tokenColumns)", logger: self.logger)
                .decode(TokenRow.self).first { _ in true }.map(Self.token)
        }
    }

    public func purgeTokens(expiredBefore time: Double) async throws -> Int {
        try await self.guarded {
            var count = 0
            for try await _ in try await self.client.query(
                "DELETE FROM auth_token WHERE expires IS NOT NULL AND expires < \(time) RETURNING 1", logger: self.logger
            ).decode(Int32.self) {
                count += 1
            }
            return count
        }
    }

    // MARK: Rows

    typealias UserRow = (String, String, String, Bool, Double)
    typealias TokenRow = (String, ByteBuffer, String, String, String, String?, Double, Double?)
    static let userColumns = "username, password_hash, roles, disabled, created"
    static let tokenColumns = "id, digest, kind, username, name, scopes, created, expires"

    private static func insert(_ connection: PostgresConnection, _ user: UserRecord, logger: Logger) async throws {
        let inserted = try await connection.query(
            """
            INSERT INTO auth_user (username, password_hash, roles, disabled, created)
            VALUES (\(user.username), \(user.passwordHash), \(NameList.encode(user.roles)), \(user.disabled), \(user.created))
            ON CONFLICT DO NOTHING RETURNING username
            """,
            logger: logger
        ).decode(String.self).first { _ in true }
        guard inserted != nil else { throw FlowError(.alreadyExists, "A user with that name already exists") }
    }

    private static func user(_ row: UserRow) -> UserRecord {
        UserRecord(username: row.0, passwordHash: row.1, roles: NameList.decode(row.2) ?? [], disabled: row.3, created: row.4)
    }

    private static func token(_ row: TokenRow) -> TokenRecord {
        TokenRecord(
            id: row.0, digest: Array(buffer: row.1), kind: TokenRecord.Kind(rawValue: row.2) ?? .personal, username: row.3, name: row.4,
            scopes: NameList.decode(row.5), created: row.6, expires: row.7
        )
    }
}
