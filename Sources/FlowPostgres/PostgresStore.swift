public import FlowCore
public import FlowProtocol
import Foundation
public import Logging
import NIOSSL
public import PostgresNIO

/// The store several nodes share (SPEC §12): collections in PostgreSQL, reached through a
/// postgres-nio connection pool.
///
/// Objects are kept as the same compact JSON text the SQLite store keeps (`body`, answered as
/// stored, so both stores answer the same bytes) beside a `jsonb` copy generated from it
/// (`doc`), which filters, sorts and indexes read. Positions (`seq`) come from one sequence.
///
/// Every write checks what it must in the statement that writes: an insert's id by the
/// primary key, a replace's and a delete's expected `rev` in their `WHERE` clause, so two
/// nodes writing the same object at once have exactly one winner.
///
/// Every write appends its change to the log in its own transaction (``ChangeLog``), with
/// positions in commit order across nodes.
///
/// The pool runs while ``run()`` does (a `Service` of the daemon's service group).
public final class PostgresStore: Sendable {
    let address: StoreAddress
    let client: PostgresClient
    let logger: Logger
    let commitReceiver = Locked<CommitReceiver?>(nil)
    let state = Locked(State())

    struct State {
        /// The change log's epoch, read by ``migrate()``.
        var epoch = ""
        /// False from the moment the listening connection is lost until it listens again.
        var reachable = true
        /// Whether a listening connection keeps ``reachable`` (``follow(_:)`` runs).
        var following = false
    }

    /// A store on the database `url` names: `postgres://user[:password]@host[:port]/database`,
    /// with `?sslmode=disable|prefer|require` (default `prefer`) and, as libpq takes it,
    /// `options` (server settings for each connection, e.g. `-c search_path=tenant`).
    public init(url: String, maxConnections: Int = 20, logger: Logger) throws(FlowError) {
        self.address = try StoreAddress(url)
        self.client = PostgresClient(configuration: self.address.clientConfiguration(maxConnections: maxConnections), backgroundLogger: logger)
        self.logger = logger
    }

    /// Runs the connection pool until the task is cancelled.
    public func run() async {
        await self.client.run()
    }

    /// A pool's configuration for the database `url` names (tools and tests that talk to it
    /// themselves read the URL as the store does).
    public static func clientConfiguration(_ url: String, maxConnections: Int = 20) throws(FlowError) -> PostgresClient.Configuration {
        try StoreAddress(url).clientConfiguration(maxConnections: maxConnections)
    }

    /// A single connection's configuration for the database `url` names.
    public static func connectionConfiguration(_ url: String) throws -> PostgresConnection.Configuration {
        try StoreAddress(url).connectionConfiguration()
    }

    /// Whether `url` is a store URL this store can use; the error says what is wrong (without
    /// repeating the URL, which may carry a password).
    public static func check(_ url: String) throws(FlowError) {
        _ = try StoreAddress(url)
    }

    // MARK: Migrations

    /// The schema, in order; a version once shipped never changes (a new one follows it).
    static let migrations: [(version: Int, name: String, statements: [String])] = [
        (1, "collections", [
            """
            CREATE TABLE object (
                collection text NOT NULL,
                id text NOT NULL,
                seq bigint NOT NULL,
                rev text NOT NULL,
                body text NOT NULL,
                doc jsonb GENERATED ALWAYS AS (body::jsonb) STORED,
                PRIMARY KEY (collection, id)
            )
            """,
            "CREATE UNIQUE INDEX object_by_seq ON object (collection, seq)",
            "CREATE SEQUENCE object_seq",
            "CREATE TABLE collection_count (collection text PRIMARY KEY, objects bigint NOT NULL)",
        ]),
        (2, "change log", PostgresStore.changeLogMigration + [
            // 64 random bits in hex: a position's epoch (SPEC §13.1).
            "INSERT INTO change_log (name, value) VALUES ('epoch', substr(md5(random()::text || clock_timestamp()::text), 1, 16))",
        ]),
        // Full-text search: the search fields' words, folded and split by PostgresSearch.
        (3, "search", [
            "ALTER TABLE object ADD COLUMN search tsvector",
            "CREATE INDEX object_search ON object USING gin (search)",
        ]),
        (4, "users, roles and tokens", PostgresStore.authMigration),
        (5, "change notifications", PostgresStore.changeNotifyMigration),
        (6, "node directory", PostgresStore.nodeDirectoryMigration),
    ]

    /// Brings the schema up to date, once however many nodes start together: the migrations
    /// run in one transaction under an advisory lock, so a second node waits and then finds
    /// them applied. Returns the versions this call applied.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await self.transaction { connection in
            // "flowgate" as a number: the lock every node's migration takes.
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: self.logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS flowgate_migration (version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())",
                logger: self.logger
            )
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM flowgate_migration", logger: self.logger).decode(Int.self) {
                applied.insert(version)
            }
            var done: [Int] = []
            for migration in Self.migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
                try await connection.query(
                    "INSERT INTO flowgate_migration (version, name) VALUES (\(migration.version), \(migration.name))", logger: self.logger
                )
                done.append(migration.version)
            }
            let epoch = try await connection.query("SELECT value FROM change_log WHERE name = 'epoch'", logger: self.logger).decode(String.self).first { _ in true }
            self.state.withLock { $0.epoch = epoch ?? "" }
            return done
        }
    }

    static let migrationLock: Int64 = 0x666c_6f77_6761_7465

    // MARK: Objects

    public func encodedObject(_ collection: CollectionSpec, id: String) async throws -> String? {
        try await self.guarded {
            try await self.client.query("SELECT body FROM object WHERE collection = \(collection.name) AND id = \(id)", logger: self.logger)
                .decode(String.self).first { _ in true }
        }
    }

    public func insert(_ collection: CollectionSpec, id: String, fields: JSONObject) async throws -> JSONObject {
        let now = StoredObject.timestamp()
        let object = StoredObject.make(fields, id: id, created: now, updated: now, rev: StoredObject.newRev())
        let text = StoredObject.text(object)
        let rev = object["rev"]?.stringValue ?? ""
        let change = try await self.transaction { connection in
            // The primary key refuses a taken id; nothing else in the insert can conflict.
            let inserted = try await connection.query(
                """
                INSERT INTO object (collection, id, seq, rev, body, search)
                VALUES (\(collection.name), \(id), nextval('object_seq'), \(rev), \(text), \(PostgresSearch.vector(of: object, in: collection))::tsvector)
                ON CONFLICT DO NOTHING RETURNING seq
                """,
                logger: self.logger
            ).decode(Int64.self).first { _ in true }
            guard inserted != nil else { throw FlowError(.alreadyExists, "An object with that id already exists") }
            try await Self.count(connection, collection.name, by: 1, logger: self.logger)
            return try await Self.appendChange(connection, collection.name, id: id, kind: .created, rev: rev, body: text, logger: self.logger)
        }
        self.committed(change)
        return object
    }

    public func replace(_ collection: CollectionSpec, id: String, expectedRev: String, fields: JSONObject) async throws -> JSONObject {
        let (object, change) = try await self.transaction { connection in
            let (current, previous) = try await Self.current(connection, collection.name, id, expectedRev: expectedRev, logger: self.logger)
            let object = StoredObject.make(
                fields, id: id, created: current["created"]?.stringValue ?? StoredObject.timestamp(), updated: StoredObject.timestamp(), rev: StoredObject.newRev()
            )
            let text = StoredObject.text(object)
            let rev = object["rev"]?.stringValue ?? ""
            // The expected rev is checked again by the write itself.
            let updated = try await connection.query(
                """
                UPDATE object SET rev = \(rev), body = \(text), search = \(PostgresSearch.vector(of: object, in: collection))::tsvector
                WHERE collection = \(collection.name) AND id = \(id) AND rev = \(expectedRev) RETURNING seq
                """,
                logger: self.logger
            ).decode(Int64.self).first { _ in true }
            guard updated != nil else { throw Self.conflict(expectedRev, current: current) }
            let change = try await Self.appendChange(
                connection, collection.name, id: id, kind: .updated, rev: rev, body: text, previous: previous, logger: self.logger
            )
            return (object, change)
        }
        self.committed(change)
        return object
    }

    public func delete(_ collection: CollectionSpec, id: String, expectedRev: String?) async throws -> JSONObject {
        let (current, change) = try await self.transaction { connection in
            let (current, text) = try await Self.current(connection, collection.name, id, expectedRev: expectedRev, logger: self.logger)
            let deleted = try await connection.query(
                """
                DELETE FROM object WHERE collection = \(collection.name) AND id = \(id) AND (\(expectedRev)::text IS NULL OR rev = \(expectedRev))
                RETURNING seq
                """,
                logger: self.logger
            ).decode(Int64.self).first { _ in true }
            guard deleted != nil else { throw Self.conflict(expectedRev ?? "", current: current) }
            try await Self.count(connection, collection.name, by: -1, logger: self.logger)
            let change = try await Self.appendChange(
                connection, collection.name, id: id, kind: .deleted, rev: current["rev"]?.stringValue ?? "", body: text, logger: self.logger
            )
            return (current, change)
        }
        self.committed(change)
        return current
    }

    /// A page of `collection` (SPEC §7.2): the SQLite store's filters, order, cursors and
    /// `total`, from one snapshot (a repeatable-read transaction: the page and the kept count
    /// agree).
    public func list(_ collection: CollectionSpec, query: ListQuery) async throws -> ListPage {
        let list = PostgresList(collection: collection, query: query)
        return try await self.transaction { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: self.logger)
            var page = try await list.run(connection, logger: self.logger) {
                try await Self.keptCount(connection, collection.name, logger: self.logger)
            }
            // The feed position the rows reflect, from the same snapshot (SPEC §13.1).
            let head = try await connection.query("SELECT position FROM change_head", logger: self.logger).decode(Int64.self).first { _ in true }
            page.position = FeedPosition(epoch: self.epoch, sequence: head ?? 0)
            return page
        }
    }

    static func keptCount(_ connection: PostgresConnection, _ collection: String, logger: Logger) async throws -> Int {
        let count = try await connection.query("SELECT objects FROM collection_count WHERE collection = \(collection)", logger: logger)
            .decode(Int64.self).first { _ in true }
        return Int(count ?? 0)
    }

    /// Objects in `collection`, as kept beside every insert and delete.
    public func count(_ collection: CollectionSpec) async throws -> Int {
        try await self.guarded {
            try await self.client.withConnection { connection in try await Self.keptCount(connection, collection.name, logger: self.logger) }
        }
    }

    // MARK: Helpers

    /// Runs `body` in a transaction; what `body` throws (a conflict, a missing object) comes out
    /// as itself, not wrapped in postgres-nio's transaction error, once the rollback is done.
    func transaction<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        try await self.guarded {
            do {
                return try await self.client.withTransaction(logger: self.logger, body)
            } catch let error as PostgresTransactionError {
                if let closureError = error.closureError, error.rollbackError == nil { throw closureError }
                throw error
            }
        }
    }

    /// Runs `body` against the database, unless it is known to be out of reach: then, and when
    /// the connection is lost under `body`, the call is `PROVIDER_UNAVAILABLE` (the database is
    /// what serves a collection) rather than a wait for the call's timeout or an internal error.
    /// A write whose connection was lost while it committed may have been applied: a retry with
    /// its `rev` (or its id) is refused if so.
    func guarded<T>(_ body: () async throws -> sending T) async throws -> sending T {
        guard self.state.withLock({ $0.reachable }) else { throw Self.unavailable }
        do {
            return try await body()
        } catch let error as PSQLError where Self.isConnectionLoss(error) {
            throw Self.unavailable
        } catch let error as PostgresTransactionError {
            let causes: [(any Error)?] = [error.beginError, error.closureError, error.commitError]
            if causes.contains(where: { ($0 as? PSQLError).map(Self.isConnectionLoss) ?? false }) { throw Self.unavailable }
            throw error
        }
    }

    static let unavailable = FlowError(.providerUnavailable, "The database is unavailable; try again shortly")

    /// Whether `error` says the database was not reached, or went away (not that it refused a statement).
    static func isConnectionLoss(_ error: PSQLError) -> Bool {
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
            return true
        case .server:
            // Class 08 (connection exception) and 57 (operator intervention: shutdown, cannot connect now).
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57")
        default:
            return false
        }
    }

    /// Whether the database is in reach, as the listening connection last found it.
    func setReachable(_ reachable: Bool) {
        let changed = self.state.withLock { state -> Bool in
            defer { state.reachable = reachable }
            return state.reachable != reachable
        }
        guard changed else { return }
        if reachable {
            self.logger.notice("the database is back")
        } else {
            self.logger.error("the database is out of reach: calls that need it answer PROVIDER_UNAVAILABLE until it is back")
        }
    }

    /// The stored object, locked for the rest of the transaction and checked against the
    /// expected rev (SPEC §7.3).
    static func current(
        _ connection: PostgresConnection, _ collection: String, _ id: String, expectedRev: String?, logger: Logger
    ) async throws -> (JSONObject, String) {
        let text = try await connection.query("SELECT body FROM object WHERE collection = \(collection) AND id = \(id) FOR UPDATE", logger: logger)
            .decode(String.self).first { _ in true }
        guard let text else { throw FlowError(.doNotExist, "Object does not exist") }
        let current = try decodeStoredObject(text)
        if let expectedRev, current["rev"]?.stringValue != expectedRev { throw Self.conflict(expectedRev, current: current) }
        return (current, text)
    }

    static func conflict(_ expectedRev: String, current: JSONObject) -> FlowError {
        FlowError(.conflict, "The object changed since revision \(expectedRev.prefix(40)); the current object is in data", data: .object(current))
    }

    /// Keeps the collection's object count in step with an insert or delete.
    static func count(_ connection: PostgresConnection, _ collection: String, by change: Int, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO collection_count (collection, objects) VALUES (\(collection), \(Int64(change)))
            ON CONFLICT (collection) DO UPDATE SET objects = collection_count.objects + excluded.objects
            """,
            logger: logger
        )
    }
}

/// Declared indexes are not built on PostgreSQL yet: a declaration changes no answer, only
/// how fast a filtered or sorted LIST is (the default ``CollectionStore/declareIndexes(_:)``).
extension PostgresStore: GatewayStore {
    /// Whether the database is there (`/readyz`): as the listening connection last found it
    /// when one runs (a pool busy with calls is no sign of a database gone), else whether it
    /// answers within two seconds.
    public func isHealthy() async -> Bool {
        let (following, reachable) = self.state.withLock { ($0.following, $0.reachable) }
        if following { return reachable }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await self.client.query("SELECT 1", logger: self.logger).decode(Int32.self).first { _ in true }) == 1 }
            group.addTask {
                try? await Task.sleep(for: .seconds(2))
                return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
    }
}

/// What a store URL says: `postgres://user[:password]@host[:port]/database`, with
/// `?sslmode=disable|prefer|require` and `options`, checked once.
struct StoreAddress: Sendable {
    let host: String
    let port: Int
    let user: String
    let password: String?
    let database: String?
    let sslmode: String
    let options: String?

    init(_ url: String) throws(FlowError) {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty, let user = components.user, !user.isEmpty
        else {
            throw FlowError(.invalidRequest, "must be a URL postgres://user[:password]@host[:port]/database")
        }
        let sslmode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        guard ["disable", "prefer", "require"].contains(sslmode) else { throw FlowError(.invalidRequest, "must have sslmode disable, prefer or require") }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.host = host
        self.port = components.port ?? 5432
        self.user = user
        self.password = components.password
        self.database = database.isEmpty ? nil : database
        self.sslmode = sslmode
        self.options = components.queryItems?.first(where: { $0.name == "options" })?.value
    }

    /// The pool's configuration.
    func clientConfiguration(maxConnections: Int) -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch self.sslmode {
        case "disable": tls = .disable
        case "require": tls = .require(.makeClientConfiguration())
        default: tls = .prefer(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: self.host, port: self.port, username: self.user, password: self.password, database: self.database, tls: tls
        )
        configuration.options.maximumConnections = maxConnections
        if let options = self.options { configuration.options.additionalStartupParameters.append(("options", options)) }
        return configuration
    }

    /// A single connection's configuration (the one that listens, outside the pool).
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch self.sslmode {
        case "disable": tls = .disable
        case "require": tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: self.host, port: self.port, username: self.user, password: self.password, database: self.database, tls: tls
        )
        configuration.options.connectTimeout = .seconds(5)
        if let options = self.options { configuration.options.additionalStartupParameters.append(("options", options)) }
        return configuration
    }
}
