public import FlowCore
import FlowProtocol
import Foundation
import Logging
import PostgresNIO

/// The change log on PostgreSQL (SPEC §13.2, §12): one row per committed collection write,
/// appended in the write's own transaction.
///
/// **Positions are handed out in commit order.** A sequence would not do: `nextval` is taken
/// when a transaction writes, not when it commits, so with several writers (several nodes) a
/// position can become visible after a higher one — a reader that walked `ORDER BY position`
/// past the higher one, and a client resuming `since` it, would never see the lower one
/// (`PostgresChangeLogTests` shows it). Instead the position is taken from the one row of
/// `change_head` with an `UPDATE`, whose row lock is held until the transaction ends: the
/// next writer's append waits for this commit, so positions commit in order and without gaps,
/// and a reader that sees position `p` has every position before it. The append is each
/// write's last statement, so what the lock serialises is the commit alone.
extension PostgresStore: ChangeLog {
    static let changeLogMigration: [String] = [
        """
        CREATE TABLE change (
            position bigint PRIMARY KEY,
            collection text NOT NULL,
            id text NOT NULL,
            kind text NOT NULL,
            rev text NOT NULL,
            body text NOT NULL,
            previous text,
            at bigint NOT NULL
        )
        """,
        "CREATE INDEX change_by_collection ON change (collection, position)",
        "CREATE TABLE change_head (one boolean PRIMARY KEY DEFAULT true CHECK (one), position bigint NOT NULL)",
        "INSERT INTO change_head (position) VALUES (0)",
        "CREATE TABLE change_log (name text PRIMARY KEY, value text NOT NULL)",
        "INSERT INTO change_log (name, value) VALUES ('pruned', '0')",
    ]

    /// Appends `kind` of the object `body` to the log in the caller's transaction, as its last
    /// statement; returns the change, for the commit receiver once the transaction commits.
    static func appendChange(
        _ connection: PostgresConnection, _ collection: String, id: String, kind: ChangeKind, rev: String, body: String, previous: String? = nil,
        logger: Logger
    ) async throws -> Change {
        let positions = try await connection.query("UPDATE change_head SET position = position + 1 RETURNING position", logger: logger)
        guard let position = try await positions.decode(Int64.self).first(where: { _ in true }) else {
            throw FlowError(.internalError, "The change log has no head row")
        }
        try await connection.query(
            """
            INSERT INTO change (position, collection, id, kind, rev, body, previous, at)
            VALUES (\(position), \(collection), \(id), \(kind.rawValue), \(rev), \(body), \(previous), \(Int64(Date.now.timeIntervalSince1970)))
            """,
            logger: logger
        )
        return Change(position: position, namespace: collection, objectid: id, kind: kind, rev: rev, body: body, previous: previous)
    }

    /// Hands a committed change to the receiver.
    func committed(_ change: Change) {
        self.commitReceiver.withLock { $0 }?.deliver(change)
    }

    public var epoch: String { self.state.withLock { $0.epoch } }

    public func onCommit(_ receiver: @escaping @Sendable (Change) -> Void) {
        self.commitReceiver.withLock { $0 = CommitReceiver(deliver: receiver) }
    }

    public func bounds() async throws -> (head: Int64, pruned: Int64) {
        try await self.transaction { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: self.logger)
            let head = try await connection.query("SELECT position FROM change_head", logger: self.logger).decode(Int64.self).first { _ in true } ?? 0
            return (head, try await Self.pruned(connection, logger: self.logger))
        }
    }

    static func pruned(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        let text = try await connection.query("SELECT value FROM change_log WHERE name = 'pruned'", logger: logger).decode(String.self).first { _ in true }
        return text.flatMap { Int64($0) } ?? 0
    }

    public func changes(after position: Int64, namespace: String, objectid: String?, limit: Int) async throws -> [Change] {
        let query: PostgresQuery
        if let objectid {
            query = """
                SELECT position, collection, id, kind, rev, body, previous FROM change
                WHERE collection = \(namespace) AND id = \(objectid) AND position > \(position) ORDER BY position LIMIT \(Int64(limit))
                """
        } else {
            query = """
                SELECT position, collection, id, kind, rev, body, previous FROM change
                WHERE collection = \(namespace) AND position > \(position) ORDER BY position LIMIT \(Int64(limit))
                """
        }
        return try await self.changes(query)
    }

    public func changes(after position: Int64, limit: Int) async throws -> [Change] {
        try await self.changes(
            "SELECT position, collection, id, kind, rev, body, previous FROM change WHERE position > \(position) ORDER BY position LIMIT \(Int64(limit))"
        )
    }

    private func changes(_ query: PostgresQuery) async throws -> [Change] {
        try await self.guarded {
            var changes: [Change] = []
            let rows = try await self.client.query(query, logger: self.logger)
            for try await (position, collection, id, kind, rev, body, previous) in rows.decode((Int64, String, String, String, String, String, String?).self) {
                changes.append(
                    Change(position: position, namespace: collection, objectid: id, kind: ChangeKind(rawValue: kind) ?? .updated, rev: rev, body: body, previous: previous)
                )
            }
            return changes
        }
    }

    /// Drops the oldest changes past `retention`, a few thousand per transaction. Only a prefix
    /// is ever dropped: the boundary is a position.
    @discardableResult
    public func prune(_ retention: ChangeRetention) async throws -> Int {
        let cutoff = Int64(Date.now.timeIntervalSince1970) - retention.maxAge.components.seconds
        let (head, _) = try await self.bounds()
        let byAge = try await self.guarded {
            try await self.client.query("SELECT max(position) FROM change WHERE at < \(cutoff)", logger: self.logger)
                .decode(Int64?.self).first { _ in true } ?? nil
        }
        let boundary = max(head - Int64(retention.maxChanges), byAge ?? 0)
        var removed = 0
        while true {
            let (deleted, done) = try await self.transaction { connection -> (Int, Bool) in
                // One pruner at a time, on any node.
                try await connection.query("SELECT value FROM change_log WHERE name = 'pruned' FOR UPDATE", logger: self.logger)
                let pruned = try await Self.pruned(connection, logger: self.logger)
                guard boundary > pruned else { return (0, true) }
                let upTo = min(boundary, pruned + 5000)
                let deleted = try await connection.query(
                    "WITH gone AS (DELETE FROM change WHERE position <= \(upTo) RETURNING 1) SELECT count(*) FROM gone", logger: self.logger
                ).decode(Int64.self).first { _ in true } ?? 0
                try await connection.query("UPDATE change_log SET value = \(String(upTo)) WHERE name = 'pruned'", logger: self.logger)
                return (Int(deleted), upTo == boundary)
            }
            removed += deleted
            if done { return removed }
        }
    }
}

/// Where committed changes go (the watch hub), boxed for the lock.
struct CommitReceiver: Sendable {
    let deliver: @Sendable (Change) -> Void
}

/// Other nodes' changes (SPEC §12): every append notifies `flowgate_changes` with its position
/// (a trigger, so a write pays no round trip for it; PostgreSQL delivers notifications at
/// commit, in commit order). One connection of its own, outside the pool, listens; the watch
/// hub, told the log advanced, reads it after its head in position order — which is commit
/// order, without gaps (see ``appendChange``). A notification lost while the listening
/// connection was down is made up for when it is back (the hub is told at once) and by a read
/// every ``followInterval``.
///
/// The same connection says whether the database is there (see ``guarded(_:)``): it is asked
/// `SELECT 1` every second, and a failed connect, a lost connection or a question unanswered
/// within two seconds marks the database out of reach until it listens again. Being outside
/// the pool, a pool busy with calls never looks like a database gone.
extension PostgresStore: SharedChangeLog {
    static let changeNotifyMigration: [String] = [
        """
        CREATE FUNCTION flowgate_change_appended() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('flowgate_changes', NEW.position::text);
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER change_appended AFTER INSERT ON change FOR EACH ROW EXECUTE FUNCTION flowgate_change_appended()",
    ]

    /// How often the hub is told to look regardless of notifications.
    static let followInterval: Duration = .seconds(1)

    public func follow(_ advanced: @escaping @Sendable (Int64?) -> Void) async {
        self.state.withLock { $0.following = true }
        defer { self.state.withLock { $0.following = false } }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.followInterval)
                    // Out of reach, there is nothing to read; the listener looks once it is back.
                    if self.state.withLock({ $0.reachable }) { advanced(nil) }
                }
            }
            group.addTask { await self.listen(advanced) }
            await group.waitForAll()
        }
    }

    /// Listens on `flowgate_changes` until cancelled, connecting again a second after the
    /// connection failed or was lost.
    private func listen(_ advanced: @escaping @Sendable (Int64?) -> Void) async {
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: try self.address.connectionConfiguration(), id: 0, logger: self.logger)
                do {
                    try await connection.listen(on: "flowgate_changes") { notifications in
                        self.setReachable(true)
                        // What committed while nobody listened.
                        advanced(nil)
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for try await notification in notifications { advanced(Int64(notification.payload)) }
                                throw ListenerEnded()
                            }
                            group.addTask {
                                while true {
                                    try await Task.sleep(for: .seconds(1))
                                    try await Self.ping(connection, logger: self.logger)
                                }
                            }
                            defer { group.cancelAll() }
                            try await group.next()
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { return }
                self.logger.debug("the connection listening for other nodes' changes ended", metadata: ["flow.error": .string(String(describing: error))])
            }
            if Task.isCancelled { return }
            self.setReachable(false)
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// `SELECT 1` on `connection`, answered within two seconds or thrown.
    private static func ping(_ connection: PostgresConnection, logger: Logger) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = try await connection.query("SELECT 1", logger: logger).decode(Int32.self).first { _ in true }
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(2))
                return false
            }
            defer { group.cancelAll() }
            guard try await group.next() == true else { throw ListenerEnded() }
        }
    }
}

/// The listening connection stopped listening or answering.
struct ListenerEnded: Error {}
