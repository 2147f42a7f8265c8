public import FlowCore
import FlowProtocol
import Foundation
import GRDB

/// Users, roles and tokens (SPEC §9) in the same database as the collections. Triggers advance
/// `auth_version` on every write, whoever makes it, so the daemon sees what `flowgate user|token`
/// changed from another process by polling one row.
extension SQLiteStore: AuthStore {
    static func createAuthTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE auth_user (
                username TEXT PRIMARY KEY,
                password_hash TEXT NOT NULL,
                roles TEXT NOT NULL,
                disabled INTEGER NOT NULL DEFAULT 0,
                created REAL NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE auth_role (
                name TEXT PRIMARY KEY,
                scopes TEXT NOT NULL,
                builtin INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;
            CREATE TABLE auth_token (
                id TEXT PRIMARY KEY,
                digest BLOB NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                username TEXT NOT NULL REFERENCES auth_user (username) ON DELETE CASCADE ON UPDATE CASCADE,
                name TEXT NOT NULL,
                scopes TEXT,
                created REAL NOT NULL,
                expires REAL
            ) WITHOUT ROWID;
            CREATE INDEX auth_token_by_expiry ON auth_token (expires) WHERE expires IS NOT NULL;
            CREATE TABLE auth_version (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
            INSERT INTO auth_version (id, value) VALUES (1, 0);
            """)
        for table in ["auth_user", "auth_role", "auth_token"] {
            for event in ["INSERT", "UPDATE", "DELETE"] {
                try db.execute(sql: """
                    CREATE TRIGGER \(table)_\(event.lowercased())_advances_version AFTER \(event) ON \(table)
                    BEGIN UPDATE auth_version SET value = value + 1 WHERE id = 1; END
                    """)
            }
        }
    }

    public func authVersion() async throws -> Int64 {
        try self.read(transaction: false) { db in
            try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM auth_version WHERE id = 1")) ?? 0
        }
    }

    public func loadAuth() async throws -> AuthRecords {
        try await self.scan { db in
            let version = try Int64.fetchOne(db, sql: "SELECT value FROM auth_version WHERE id = 1") ?? 0
            let users = try Row.fetchAll(db, sql: "SELECT * FROM auth_user ORDER BY username").map(Self.user)
            let roles = try Row.fetchAll(db, sql: "SELECT * FROM auth_role ORDER BY name").map(Self.role)
            let tokens = try Row.fetchAll(db, sql: "SELECT * FROM auth_token ORDER BY created").map(Self.token)
            return AuthRecords(version: version, users: users, roles: roles, tokens: tokens)
        }
    }

    // MARK: Users

    public func insertUser(_ user: UserRecord) async throws {
        try await self.write { db in try Self.insert(db, user) }
    }

    public func insertFirstUser(_ user: UserRecord) async throws -> Bool {
        try await self.write { db in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM auth_user") == 0 else { return false }
            try Self.insert(db, user)
            return true
        }
    }

    public func updateUser(_ username: String, change: @escaping @Sendable (UserRecord) throws -> UserRecord) async throws -> UserRecord {
        try await self.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM auth_user WHERE username = ?", arguments: [username]) else {
                throw FlowError(.doNotExist, "User does not exist")
            }
            var user = try change(Self.user(row))
            user.username = username
            try db.execute(
                sql: "UPDATE auth_user SET password_hash = ?, roles = ?, disabled = ? WHERE username = ?",
                arguments: [user.passwordHash, NameList.encode(user.roles), user.disabled, username]
            )
            return user
        }
    }

    public func deleteUser(_ username: String) async throws -> UserRecord {
        try await self.write { db in
            guard let row = try Row.fetchOne(db, sql: "DELETE FROM auth_user WHERE username = ? RETURNING *", arguments: [username]) else {
                throw FlowError(.doNotExist, "User does not exist")
            }
            return Self.user(row)
        }
    }

    // MARK: Roles

    public func insertRole(_ role: RoleRecord) async throws {
        try await self.write { db in
            let inserted = try Row.fetchOne(
                db, sql: "INSERT INTO auth_role (name, scopes, builtin) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING name",
                arguments: [role.name, NameList.encode(role.scopes), role.builtin]
            )
            guard inserted != nil else { throw FlowError(.alreadyExists, "A role with that name already exists") }
        }
    }

    public func updateRole(_ name: String, change: @escaping @Sendable (RoleRecord) throws -> RoleRecord) async throws -> RoleRecord {
        try await self.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM auth_role WHERE name = ?", arguments: [name]) else {
                throw FlowError(.doNotExist, "Role does not exist")
            }
            var role = try change(Self.role(row))
            role.name = name
            try db.execute(sql: "UPDATE auth_role SET scopes = ? WHERE name = ?", arguments: [NameList.encode(role.scopes), name])
            return role
        }
    }

    public func deleteRole(_ name: String) async throws -> RoleRecord {
        try await self.write { db in
            guard let row = try Row.fetchOne(db, sql: "DELETE FROM auth_role WHERE name = ? RETURNING *", arguments: [name]) else {
                throw FlowError(.doNotExist, "Role does not exist")
            }
            // Nobody keeps a role that is gone (a later role of the same name must not inherit them).
            for userRow in try Row.fetchAll(db, sql: "SELECT * FROM auth_user") {
                var user = Self.user(userRow)
                guard user.roles.contains(name) else { continue }
                user.roles.removeAll { $0 == name }
                try db.execute(sql: "UPDATE auth_user SET roles = ? WHERE username = ?", arguments: [NameList.encode(user.roles), user.username])
            }
            return Self.role(row)
        }
    }

    // MARK: Tokens

    public func insertToken(_ token: TokenRecord, limit: Int) async throws {
        try await self.write { db in
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM auth_user WHERE username = ?", arguments: [token.username]) != nil else {
                throw FlowError(.doNotExist, "User does not exist")
            }
            let held = try Int.fetchOne(
                db, sql: "SELECT count(*) FROM auth_token WHERE username = ? AND kind = ?", arguments: [token.username, token.kind.rawValue]
            ) ?? 0
            if held >= limit {
                guard token.kind == .session else {
                    throw FlowError(.rateLimited, "The user has \(held) personal access tokens, the most allowed; revoke one first")
                }
                try db.execute(
                    sql: """
                        DELETE FROM auth_token WHERE id IN (
                            SELECT id FROM auth_token WHERE username = ? AND kind = 'session' ORDER BY created LIMIT ?)
                        """,
                    arguments: [token.username, held - limit + 1]
                )
            }
            try db.execute(
                sql: "INSERT INTO auth_token (id, digest, kind, username, name, scopes, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    token.id, Data(token.digest), token.kind.rawValue, token.username, token.name,
                    token.scopes.map(NameList.encode), token.created, token.expires,
                ]
            )
        }
    }

    public func deleteToken(id: String) async throws -> TokenRecord? {
        try await self.write { db in
            try Row.fetchOne(db, sql: "DELETE FROM auth_token WHERE id = ? RETURNING *", arguments: [id]).map(Self.token)
        }
    }

    public func purgeTokens(expiredBefore time: Double) async throws -> Int {
        try await self.write { db in
            try db.execute(sql: "DELETE FROM auth_token WHERE expires IS NOT NULL AND expires < ?", arguments: [time])
            return db.changesCount
        }
    }

    // MARK: Rows

    private static func insert(_ db: Database, _ user: UserRecord) throws {
        let inserted = try Row.fetchOne(
            db,
            sql: "INSERT INTO auth_user (username, password_hash, roles, disabled, created) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING username",
            arguments: [user.username, user.passwordHash, NameList.encode(user.roles), user.disabled, user.created]
        )
        guard inserted != nil else { throw FlowError(.alreadyExists, "A user with that name already exists") }
    }

    private static func user(_ row: Row) -> UserRecord {
        UserRecord(
            username: row["username"], passwordHash: row["password_hash"], roles: NameList.decode(row["roles"]) ?? [],
            disabled: row["disabled"], created: row["created"]
        )
    }

    private static func role(_ row: Row) -> RoleRecord {
        RoleRecord(name: row["name"], scopes: NameList.decode(row["scopes"]) ?? [], builtin: row["builtin"])
    }

    private static func token(_ row: Row) -> TokenRecord {
        let digest: Data = row["digest"]
        let kind: String = row["kind"]
        return TokenRecord(
            id: row["id"], digest: Array(digest), kind: TokenRecord.Kind(rawValue: kind) ?? .personal, username: row["username"],
            name: row["name"], scopes: NameList.decode(row["scopes"]), created: row["created"], expires: row["expires"]
        )
    }
}

extension SQLiteStore: GatewayStore {}
