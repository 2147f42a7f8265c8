public import FlowCore
import FlowProtocol
import Foundation
import GRDB

/// The change log (SPEC §13.2): one row per committed collection write, appended in the write's
/// own transaction. `AUTOINCREMENT` keeps positions strictly increasing even when pruning has
/// emptied the table; SQLite's single writer makes their order the commit order.
extension SQLiteStore: ChangeLog {
    static func createChangeLog(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE change (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                collection TEXT NOT NULL,
                id TEXT NOT NULL,
                kind TEXT NOT NULL,
                rev TEXT NOT NULL,
                body TEXT NOT NULL,
                previous TEXT,
                at INTEGER NOT NULL
            );
            CREATE INDEX change_by_collection ON change (collection, position);
            CREATE TABLE change_log (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            """)
        try db.execute(sql: "INSERT INTO change_log (name, value) VALUES ('epoch', ?), ('pruned', '0')", arguments: [FeedPosition.newEpoch()])
    }

    static func readEpoch(_ db: Database) throws -> String {
        guard let epoch = try String.fetchOne(db.cachedStatement(sql: "SELECT value FROM change_log WHERE name = 'epoch'")) else {
            throw FlowError(.internalError, "The change log has no epoch")
        }
        return epoch
    }

    /// The last position written (0 before the first).
    static func head(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM sqlite_sequence WHERE name = 'change'")) ?? 0
    }

    /// Appends `kind` of the object `body` to the log, in the caller's transaction, and hands
    /// the change to the commit receiver once (and only if) that transaction commits.
    func logChange(_ db: Database, _ collection: String, id: String, kind: ChangeKind, rev: String, body: String, previous: String? = nil) throws {
        let position = try Int64.fetchOne(
            db.cachedStatement(sql: "INSERT INTO change (collection, id, kind, rev, body, previous, at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING position"),
            arguments: [collection, id, kind.rawValue, rev, body, previous, Int64(Date.now.timeIntervalSince1970)]
        )!
        guard let receiver = self.commitReceiver.withLock({ $0 }) else { return }
        let change = Change(position: position, namespace: collection, objectid: id, kind: kind, rev: rev, body: body, previous: previous)
        // Runs on the writer's queue, in commit order.
        db.afterNextTransaction(onCommit: { _ in receiver.deliver(change) })
    }

    public func onCommit(_ receiver: @escaping @Sendable (Change) -> Void) {
        self.commitReceiver.withLock { $0 = CommitReceiver(deliver: receiver) }
    }

    public func bounds() async throws -> (head: Int64, pruned: Int64) {
        try self.read(transaction: true) { db in
            let pruned = try String.fetchOne(db.cachedStatement(sql: "SELECT value FROM change_log WHERE name = 'pruned'")).flatMap { Int64($0) } ?? 0
            return (try Self.head(db), pruned)
        }
    }

    public func changes(after position: Int64, namespace: String, objectid: String?, limit: Int) async throws -> [Change] {
        var sql = "SELECT position, collection, id, kind, rev, body, previous FROM change WHERE collection = ? AND position > ?"
        var arguments: StatementArguments = [namespace, position]
        if let objectid {
            sql += " AND id = ?"
            arguments += [objectid]
        }
        return try await self.changes(sql + " ORDER BY position LIMIT ?", arguments + [limit])
    }

    public func changes(after position: Int64, limit: Int) async throws -> [Change] {
        try await self.changes("SELECT position, collection, id, kind, rev, body, previous FROM change WHERE position > ? ORDER BY position LIMIT ?", [position, limit])
    }

    private func changes(_ sql: String, _ arguments: StatementArguments) async throws -> [Change] {
        try await self.scan { db in
            try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { row in
                Change(
                    position: row[0], namespace: row[1], objectid: row[2], kind: ChangeKind(rawValue: row[3]) ?? .updated, rev: row[4],
                    body: row[5], previous: row[6]
                )
            }
        }
    }

    /// Drops the oldest changes past `retention`, a few thousand per transaction so that other
    /// writes never wait long. Only a prefix is ever dropped: the boundary is a position, so a
    /// clock set back cannot leave a hole.
    @discardableResult
    public func prune(_ retention: ChangeRetention) async throws -> Int {
        let cutoff = Int64(Date.now.timeIntervalSince1970) - retention.maxAge.components.seconds
        let boundary = try await self.writer.read { db -> Int64 in
            let byCount = try Self.head(db) - Int64(retention.maxChanges)
            let byAge = try Int64.fetchOne(db, sql: "SELECT max(position) FROM change WHERE at < ?", arguments: [cutoff]) ?? 0
            return max(byCount, byAge)
        }
        var removed = 0
        while true {
            let (deleted, done) = try await self.write { db -> (Int, Bool) in
                let pruned = try String.fetchOne(db, sql: "SELECT value FROM change_log WHERE name = 'pruned'").flatMap { Int64($0) } ?? 0
                guard boundary > pruned else { return (0, true) }
                let batchEnd = try Int64.fetchOne(
                    db, sql: "SELECT position FROM change WHERE position > ? ORDER BY position LIMIT 1 OFFSET 4999", arguments: [pruned]
                )
                let upTo = min(boundary, batchEnd ?? boundary)
                try db.execute(sql: "DELETE FROM change WHERE position <= ?", arguments: [upTo])
                let deleted = db.changesCount
                try db.execute(sql: "UPDATE change_log SET value = ? WHERE name = 'pruned'", arguments: [String(upTo)])
                return (deleted, upTo == boundary)
            }
            removed += deleted
            if done { return removed }
        }
    }
}
