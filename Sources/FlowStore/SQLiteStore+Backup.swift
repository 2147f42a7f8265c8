public import FlowCore
import FlowProtocol
import Foundation
import GRDB

/// Backup and restore, online (SPEC §10), with SQLite's backup API through GRDB.
///
/// A snapshot is taken from one read transaction, so it is consistent and holds every write
/// committed before it started, while writes go on (WAL). A restore checks the snapshot first
/// (SQLite's `integrity_check`, and migrations this flowgate knows), brings a copy of it up to
/// this schema, keeps the current database beside it, then copies it into the open database
/// through the writer: the daemon's connections read the restored data at their next read,
/// with no restart. The restored change log starts a new epoch, so no position from before the
/// restore is resumed against different data (`CURSOR_EXPIRED`).
extension SQLiteStore {
    /// What a checked snapshot holds.
    public struct SnapshotSummary: Sendable, Equatable {
        /// Stored objects, of every collection.
        public var objects: Int
        public var users: Int
        public var tokens: Int
    }

    /// What a restore did.
    public struct RestoreResult: Sendable, Equatable {
        public var summary: SnapshotSummary
        /// The restored change log's epoch and last position.
        public var epoch: String
        public var head: Int64
        /// Where the database as it was before the restore is kept.
        public var previous: String
    }

    /// Writes a consistent snapshot of the database to the new file `path` (replacing one
    /// there only once the snapshot is complete), while writes go on.
    public func backup(to path: String) async throws {
        let source = self.writer
        try await Self.offPool { try Self.writeSnapshot(of: source, to: path) }
    }

    /// Checks the snapshot at `path` (a copy is checked; the file is never written) and, if it
    /// is good, replaces this database's contents with it, keeping the current contents in
    /// `previous`. A bad snapshot throws `INVALID_REQUEST` naming what is wrong, and nothing
    /// changes. `scratch` is a folder for the working copy.
    public func restore(from path: String, keepingPreviousAt previous: String, scratch: String) async throws -> RestoreResult {
        let work = (scratch as NSString).appendingPathComponent("restore-\(UUID().uuidString.lowercased()).sqlite")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: work + suffix) } }
        do {
            try FileManager.default.copyItem(atPath: path, toPath: work)
        } catch {
            throw FlowError(.invalidRequest, "The snapshot file cannot be read")
        }
        let liveAuthVersion = try await self.authVersion()
        let epoch = FeedPosition.newEpoch()
        let live = self.writer
        let declared = self.declared.withLock { $0 }
        let (summary, head) = try await Self.offPool { () throws -> (SnapshotSummary, Int64) in
            let snapshot = try Self.openChecked(work)
            defer { try? snapshot.close() }
            let summary = try snapshot.read(Self.summary)
            // Older snapshots are brought up to this schema, so every connection's statements still fit.
            try Self.migrator.migrate(snapshot)
            let head = try snapshot.write { db -> Int64 in
                try db.execute(sql: "UPDATE change_log SET value = ? WHERE name = 'epoch'", arguments: [epoch])
                // Past every version anyone has seen: the auth directories reload.
                try db.execute(sql: "UPDATE auth_version SET value = max(value, ?) + 1 WHERE id = 1", arguments: [liveAuthVersion])
                // The indexes today's definitions declare, not the snapshot's.
                _ = try Self.applyIndexes(db, declared)
                return try Self.head(db)
            }
            try Self.writeSnapshot(of: live, to: previous)
            try snapshot.backup(to: live)
            return (summary, head)
        }
        self.currentEpoch.withLock { $0 = epoch }
        return RestoreResult(summary: summary, epoch: epoch, head: head, previous: previous)
    }

    /// Checks the snapshot at `path` without changing anything: readable as SQLite, intact, and
    /// a flowgate database this version knows.
    public static func checkSnapshot(at path: String) throws -> SnapshotSummary {
        var configuration = Configuration()
        configuration.readonly = true
        let snapshot: DatabaseQueue
        do {
            snapshot = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw FlowError(.invalidRequest, "The snapshot cannot be opened as a SQLite database")
        }
        defer { try? snapshot.close() }
        try Self.check(snapshot)
        return try snapshot.read(Self.summary)
    }

    private static func openChecked(_ path: String) throws -> DatabaseQueue {
        let snapshot: DatabaseQueue
        do {
            snapshot = try DatabaseQueue(path: path)
        } catch {
            throw FlowError(.invalidRequest, "The snapshot cannot be opened as a SQLite database")
        }
        do {
            try Self.check(snapshot)
        } catch {
            try? snapshot.close()
            throw error
        }
        return snapshot
    }

    private static func check(_ snapshot: DatabaseQueue) throws {
        let known = Self.migrator.migrations
        do {
            try snapshot.read { db throws in
                guard try String.fetchAll(db, sql: "PRAGMA integrity_check") == ["ok"] else {
                    throw FlowError(.invalidRequest, "The snapshot is damaged: SQLite's integrity check failed")
                }
                let applied = try db.tableExists("grdb_migrations") ? try Self.migrator.appliedIdentifiers(db) : []
                guard let first = known.first, applied.contains(first) else {
                    throw FlowError(.invalidRequest, "The file is a SQLite database, but not a flowgate one")
                }
                let unknown = applied.subtracting(known)
                guard unknown.isEmpty else {
                    throw FlowError(.invalidRequest, "The snapshot was made by a newer flowgate: its schema has \(unknown.count) migration(s) this one does not know")
                }
            }
        } catch let error as FlowError {
            throw error
        } catch {
            // SQLITE_NOTADB, SQLITE_CORRUPT and the like: nothing of the file goes into the message.
            throw FlowError(.invalidRequest, "The snapshot is not a readable SQLite database")
        }
    }

    private static func summary(_ db: Database) throws -> SnapshotSummary {
        SnapshotSummary(
            objects: try Int.fetchOne(db, sql: "SELECT count(*) FROM object") ?? 0,
            users: try db.tableExists("auth_user") ? Int.fetchOne(db, sql: "SELECT count(*) FROM auth_user") ?? 0 : 0,
            tokens: try db.tableExists("auth_token") ? Int.fetchOne(db, sql: "SELECT count(*) FROM auth_token") ?? 0 : 0
        )
    }

    /// Copies `source` (one read transaction) into a new single-file database at `path`.
    static func writeSnapshot(of source: any DatabaseReader, to path: String) throws {
        let partial = path + ".partial"
        try? FileManager.default.removeItem(atPath: partial)
        do {
            let destination = try DatabaseQueue(path: partial)
            try source.backup(to: destination)
            // One file, whatever the source's journal mode: no -wal to carry along.
            try destination.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
            try destination.close()
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: partial, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }

    /// Runs blocking database work (a whole-file copy) on a thread of its own, off the
    /// cooperative pool.
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}
