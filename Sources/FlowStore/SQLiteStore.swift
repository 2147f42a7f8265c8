public import FlowCore
public import FlowProtocol
import Foundation
public import GRDB

/// The embedded store (SPEC §7): one SQLite database, WAL, schema only through migrations.
///
/// Objects live in one table keyed by (collection, id) with an insertion sequence for stable
/// keyset paging; their search fields are mirrored into an FTS5 table in the same transaction.
/// With `synchronous = NORMAL` in WAL mode a commit survives the process being killed (SPEC §7.4);
/// only a power loss can take the last commits.
public final class SQLiteStore: CollectionStore {
    let writer: any DatabaseWriter
    /// Read-only connections for the hot reads; nil reads through `writer`.
    let readers: ReadConnections?
    /// The change log's epoch (SPEC §13.1); a restore starts a new one.
    public var epoch: String { self.currentEpoch.withLock { $0 } }
    let currentEpoch: Locked<String>
    /// The database file; nil for a database given as a writer (tests).
    public let path: String?
    /// Where write latency is recorded (SPEC §10).
    let metrics: GatewayMetrics
    /// Collection writes that arrive together commit together.
    let groups: GroupCommit
    /// The collections whose indexes were last declared, for a restore to apply again.
    let declared = Locked<[CollectionSpec]>([])
    /// Where committed changes go (the change feed), set once at start.
    let commitReceiver = Locked<CommitReceiver?>(nil)

    /// The receiver, boxed: a bare closure kept in a `Locked` gains a reabstraction thunk at every
    /// `withLock` (see ``Locked``), and every commit read it.
    struct CommitReceiver: Sendable {
        let deliver: @Sendable (Change) -> Void
    }

    /// Opens (creating if needed) the database file `path` and migrates it.
    public convenience init(path: String, metrics: GatewayMetrics = .disabled) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        // Point reads run on the calling (cooperative) thread, so one connection per core is enough;
        // scans run on their own queues, a few at once, cancelled at their deadline.
        let cores = max(2, ProcessInfo.processInfo.activeProcessorCount)
        try self.init(migrated: pool, readers: try ReadConnections(path: path, points: cores, scans: max(4, cores)), path: path, metrics: metrics)
    }

    /// Uses `writer` (a `DatabasePool`, or a `DatabaseQueue` in tests) for everything and migrates it.
    public convenience init(writer: any DatabaseWriter) throws {
        try Self.migrator.migrate(writer)
        try self.init(migrated: writer, readers: nil, path: nil, metrics: .disabled)
    }

    private init(migrated writer: any DatabaseWriter, readers: ReadConnections?, path: String?, metrics: GatewayMetrics) throws {
        self.writer = writer
        self.readers = readers
        self.path = path
        self.metrics = metrics
        self.groups = GroupCommit(writer: writer, metrics: metrics)
        self.currentEpoch = Locked(try writer.read(Self.readEpoch))
    }

    /// The schema, one migration at a time; never changed in place once released.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: collections") { db in
            try db.execute(sql: """
                CREATE TABLE object (
                    collection TEXT NOT NULL,
                    id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    rev TEXT NOT NULL,
                    body TEXT NOT NULL,
                    PRIMARY KEY (collection, id)
                ) WITHOUT ROWID;
                CREATE UNIQUE INDEX object_by_seq ON object (collection, seq);
                CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                CREATE VIRTUAL TABLE object_search USING fts5 (
                    collection UNINDEXED, id UNINDEXED, content, tokenize = 'unicode61 remove_diacritics 2'
                );
                """)
        }
        // v1 keyed the search rows by (collection, id) in UNINDEXED columns, so every write
        // scanned the whole search table. Rows are now keyed by the object's seq as rowid.
        migrator.registerMigration("v2: search rows keyed by seq") { db in
            try db.execute(sql: """
                CREATE VIRTUAL TABLE object_search_v2 USING fts5 (content, tokenize = 'unicode61 remove_diacritics 2');
                INSERT INTO object_search_v2 (rowid, content)
                    SELECT object.seq, object_search.content FROM object_search
                    JOIN object ON object.collection = object_search.collection AND object.id = object_search.id;
                DROP TABLE object_search;
                ALTER TABLE object_search_v2 RENAME TO object_search;
                """)
        }
        migrator.registerMigration("v3: users, roles and tokens", migrate: Self.createAuthTables)
        // Counting a user's tokens (the per-user limit) without reading the whole table.
        migrator.registerMigration("v4: tokens by user") { db in
            try db.execute(sql: "CREATE INDEX auth_token_by_user ON auth_token (username, kind, created)")
        }
        migrator.registerMigration("v5: change log", migrate: Self.createChangeLog)
        // A LIST's `total` without counting the collection: kept by every insert and delete.
        migrator.registerMigration("v6: collection counts") { db in
            try db.execute(sql: """
                CREATE TABLE collection_count (collection TEXT PRIMARY KEY, objects INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO collection_count (collection, objects) SELECT collection, count(*) FROM object GROUP BY collection;
                """)
        }
        return migrator
    }

    /// Whether the database answers (for `/readyz`).
    public func isHealthy() async -> Bool {
        (try? await self.writer.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    // MARK: Reads

    public func encodedObject(_ collection: CollectionSpec, id: String) async throws -> String? {
        // One statement is atomic by itself: no transaction around it.
        try self.read(transaction: false) { db in
            try String.fetchOne(db.cachedStatement(sql: "SELECT body FROM object WHERE collection = ? AND id = ?"), arguments: [collection.name, id])
        }
    }

    public func list(_ collection: CollectionSpec, query: ListQuery) async throws -> ListPage {
        // The count, the page and the feed position its rows reflect come from one snapshot; the
        // caller's deadline interrupts it.
        try await self.scan { db in
            var page = try ListStatement(collection: collection, query: query).run(db)
            // The epoch from the same snapshot: a restore changes it.
            page.position = FeedPosition(epoch: try Self.readEpoch(db), sequence: try Self.head(db))
            return page
        }
    }

    /// Runs a point read (bounded work: a row by its key) on the calling thread, on one of the
    /// read-only connections. It takes microseconds; a hop to a reader queue and back would cost
    /// more than the read itself. Writes still go through the writer's queue.
    func read<T>(transaction: Bool, _ body: (Database) throws -> T) throws -> T {
        guard let readers = self.readers else { return try self.writer.read(body) }
        return try readers.read(transaction: transaction, body)
    }

    /// Runs a read whose cost grows with the data off the cooperative pool; cancelling the task
    /// interrupts it with `CancellationError` (SPEC §11).
    func scan<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        guard let readers = self.readers else { return try await self.writer.read(body) }
        return try await readers.scan(body)
    }

    // MARK: Writes

    /// Runs `updates` in one write transaction.
    func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        try await self.writer.write(updates)
    }

    /// Runs a collection write through the group commit, timed
    /// (`flowgate_store_write_duration_seconds`): the wait for the writer, the statements and the
    /// commit that carries it.
    func groupWrite<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let started = ContinuousClock.now
        defer { self.metrics.storeWrite(.now - started) }
        return try await self.groups.write(updates)
    }

    public func insert(_ collection: CollectionSpec, id: String, fields: JSONObject) async throws -> JSONObject {
        let now = StoredObject.timestamp()
        let object = StoredObject.make(fields, id: id, created: now, updated: now, rev: StoredObject.newRev())
        let text = StoredObject.text(object)
        try await self.groupWrite { db in
            let seq = try Self.nextSequence(db)
            // The primary key refuses a taken id; nothing else in the insert can conflict.
            let inserted = try Int64.fetchOne(
                db.cachedStatement(sql: "INSERT INTO object (collection, id, seq, rev, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING seq"),
                arguments: [collection.name, id, seq, object["rev"]?.stringValue, text]
            )
            guard inserted != nil else { throw FlowError(.alreadyExists, "An object with that id already exists") }
            try Self.count(db, collection.name, by: 1)
            try Self.index(db, collection, seq: seq, object: object, replacing: false)
            try self.logChange(db, collection.name, id: id, kind: .created, rev: object["rev"]?.stringValue ?? "", body: text)
        }
        return object
    }

    public func replace(_ collection: CollectionSpec, id: String, expectedRev: String, fields: JSONObject) async throws -> JSONObject {
        try await self.groupWrite { db in
            let (current, previous) = try Self.current(db, collection.name, id, expectedRev: expectedRev)
            let object = StoredObject.make(
                fields, id: id, created: current["created"]?.stringValue ?? StoredObject.timestamp(), updated: StoredObject.timestamp(), rev: StoredObject.newRev()
            )
            let text = StoredObject.text(object)
            let rev = object["rev"]?.stringValue ?? ""
            let seq = try Int64.fetchOne(
                db.cachedStatement(sql: "UPDATE object SET rev = ?, body = ? WHERE collection = ? AND id = ? RETURNING seq"),
                arguments: [rev, text, collection.name, id]
            )
            try Self.index(db, collection, seq: seq!, object: object, replacing: true)
            try self.logChange(db, collection.name, id: id, kind: .updated, rev: rev, body: text, previous: previous)
            return object
        }
    }

    public func delete(_ collection: CollectionSpec, id: String, expectedRev: String?) async throws -> JSONObject {
        try await self.groupWrite { db in
            let (current, text) = try Self.current(db, collection.name, id, expectedRev: expectedRev)
            let seq = try Int64.fetchOne(
                db.cachedStatement(sql: "DELETE FROM object WHERE collection = ? AND id = ? RETURNING seq"), arguments: [collection.name, id]
            )
            try db.cachedStatement(sql: "DELETE FROM object_search WHERE rowid = ?").execute(arguments: [seq])
            try Self.count(db, collection.name, by: -1)
            try self.logChange(db, collection.name, id: id, kind: .deleted, rev: current["rev"]?.stringValue ?? "", body: text)
            return current
        }
    }

    // MARK: Helpers

    /// The stored object and its text, checked against the expected rev (SPEC §7.3).
    static func current(_ db: Database, _ collection: String, _ id: String, expectedRev: String?) throws -> (JSONObject, String) {
        let statement = try db.cachedStatement(sql: "SELECT body FROM object WHERE collection = ? AND id = ?")
        guard let text = try String.fetchOne(statement, arguments: [collection, id]) else { throw FlowError(.doNotExist, "Object does not exist") }
        let current = try decodeStoredObject(text)
        if let expectedRev, current["rev"]?.stringValue != expectedRev {
            throw FlowError(.conflict, "The object changed since revision \(expectedRev.prefix(40)); the current object is in data", data: .object(current))
        }
        return (current, text)
    }

    static func nextSequence(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(
            db.cachedStatement(sql: "INSERT INTO counter (name, value) VALUES ('object', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value")
        )!
    }

    /// Keeps the collection's object count (`collection_count`) in step with an insert or delete.
    static func count(_ db: Database, _ collection: String, by change: Int) throws {
        try db.cachedStatement(
            sql: "INSERT INTO collection_count (collection, objects) VALUES (?, ?) ON CONFLICT (collection) DO UPDATE SET objects = objects + excluded.objects"
        ).execute(arguments: [collection, change])
    }

    /// Mirrors the search fields' text into the FTS5 table, under the object's seq.
    static func index(_ db: Database, _ collection: CollectionSpec, seq: Int64, object: JSONObject, replacing: Bool) throws {
        guard !collection.searchFields.isEmpty else { return }
        if replacing { try db.cachedStatement(sql: "DELETE FROM object_search WHERE rowid = ?").execute(arguments: [seq]) }
        let content = StoredObject.searchText(object, fields: collection.searchFields)
        try db.cachedStatement(sql: "INSERT INTO object_search (rowid, content) VALUES (?, ?)").execute(arguments: [seq, content])
    }
}
