import FlowCore
@testable import FlowPostgres
import FlowProtocol
import FlowTestSupport
import FlowStoreTestSupport
import Foundation
import PostgresNIO
import Testing

/// The change log across nodes (SPEC §12): a reader that walks positions in order and resumes
/// after the last one it saw misses nothing, even when two writers' transactions would commit
/// out of the order of their positions.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct PostgresChangeLogTests {
    static let devices = CollectionSpec(name: "inventory/device", searchFields: [])

    /// How a writer takes its change's position: the log's own append, or a plain sequence.
    enum Append: CaseIterable {
        case sequence
        case log

        /// Appends a change for `id` in the caller's transaction, this way.
        func callAsFunction(_ connection: PostgresConnection, id: String) async throws {
            switch self {
            case .log:
                _ = try await PostgresStore.appendChange(
                    connection, PostgresChangeLogTests.devices.name, id: id, kind: .created, rev: "1", body: #"{"id":"\#(id)"}"#, logger: TestDatabase.logger
                )
            case .sequence:
                // The naive log: a position from a sequence, taken when the transaction writes.
                try await connection.query(
                    """
                    INSERT INTO change (position, collection, id, kind, rev, body, at)
                    VALUES (nextval('naive_position'), \(PostgresChangeLogTests.devices.name), \(id), 'created', '1', '{}', 0)
                    """,
                    logger: TestDatabase.logger
                )
            }
        }
    }

    /// Writer A takes a position and holds its transaction open; writer B takes the next one
    /// and commits; a reader reads what is there, then A commits and the reader resumes after
    /// the last position it saw. With positions from a plain sequence (taken at write, not at
    /// commit) B commits first, the reader moves past A's position, and A's change is never
    /// delivered: the naive `ORDER BY position` reader loses it. With the log's serialized
    /// append B waits for A's commit, and the reader gets A then B.
    @Test(arguments: Append.allCases)
    func aReaderResumingAfterWhatItSawMissesNothingWhenCommitsInterleave(append: Append) async throws {
        try await TestDatabase.with { url in
            try await TestDatabase.withStore(url) { store in try await store.migrate() }
            try await TestDatabase.admin(url, "CREATE SEQUENCE naive_position")
            try await TestDatabase.withStore(url) { reader in
                try await TestDatabase.withClient(url) { writers in
                    let logger = TestDatabase.logger
                    let (appendedA, appendedAContinuation) = AsyncStream<Void>.makeStream()
                    let (commitA, commitAContinuation) = AsyncStream<Void>.makeStream()
                    let a = Task {
                        try await writers.withTransaction(logger: logger) { connection in
                            try await append(connection, id: "a")
                            appendedAContinuation.yield()
                            for await _ in commitA { break }
                        }
                    }
                    var appended = appendedA.makeAsyncIterator()
                    _ = await appended.next()
                    let b = Task {
                        try await writers.withTransaction(logger: logger) { connection in
                            try await append(connection, id: "b")
                        }
                    }
                    // The reader polls while A is open: with a sequence it sees B's change (and moves
                    // past A's position); serialized, B is still waiting and there is nothing yet.
                    var delivered: [String] = []
                    var cursor: Int64 = 0
                    for _ in 0..<20 {
                        for change in try await reader.changes(after: cursor, limit: 100) {
                            delivered.append(change.objectid)
                            cursor = change.position
                        }
                        if !delivered.isEmpty { break }
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    commitAContinuation.yield()
                    try await a.value
                    try await b.value
                    for change in try await reader.changes(after: cursor, limit: 100) {
                        delivered.append(change.objectid)
                        cursor = change.position
                    }
                    // Everything that committed is in the log, in one place or another.
                    let all = try await reader.changes(after: 0, limit: 100).map(\.objectid)
                    #expect(Set(all) == ["a", "b"])
                    switch append {
                    case .sequence:
                        #expect(delivered == ["b"], "the naive reader saw B, moved past A's position and never saw A")
                    case .log:
                        #expect(delivered == ["a", "b"], "every change once, in commit order")
                    }
                }
            }
        }
    }

    @Test func everyWriteLogsItsChangeInOrderAndTheLogResumesAndPrunes() async throws {
        try await TestDatabase.withMigratedStore { store in
            let epoch = store.epoch
            #expect(FeedPosition(FeedPosition(epoch: epoch, sequence: 0).description) != nil, "the epoch \(epoch) is a valid position epoch")
            let received = Locked<[Int64]>([])
            store.onCommit { change in received.withLock { $0.append(change.position) } }
            let created = try await store.insert(Self.devices, id: "x", fields: ["n": 1])
            let replaced = try await store.replace(Self.devices, id: "x", expectedRev: created["rev"]!.stringValue!, fields: ["n": 2])
            _ = try await store.delete(Self.devices, id: "x", expectedRev: nil)
            // A refused write logs nothing.
            _ = try? await store.replace(Self.devices, id: "x", expectedRev: "stale", fields: [:])
            let changes = try await store.changes(after: 0, limit: 10)
            #expect(changes.map(\.kind) == [.created, .updated, .deleted])
            #expect(changes.map(\.position) == [1, 2, 3])
            #expect(received.withLock { $0 } == [1, 2, 3])
            #expect(try decodeStoredObject(changes[1].previous ?? "")["n"] == 1 && changes[1].body == StoredObject.text(replaced))
            #expect(try await store.changes(after: 1, namespace: Self.devices.name, objectid: "x", limit: 10).map(\.position) == [2, 3])
            #expect(try await store.changes(after: 0, namespace: "other/thing", objectid: nil, limit: 10).isEmpty)
            let (head, pruned) = try await store.bounds()
            #expect(head == 3 && pruned == 0)
            // A LIST says where the feed stood when its rows were read.
            #expect(try await store.list(Self.devices, query: ListQuery()).position == FeedPosition(epoch: epoch, sequence: 3))
            // Pruning keeps the last change; a position before it is expired.
            #expect(try await store.prune(ChangeRetention(maxChanges: 1)) == 2)
            #expect(try await store.bounds() == (3, 2))
            #expect(try await store.changes(after: 2, limit: 10).map(\.position) == [3])
            await #expect(throws: FlowError.self) { _ = try await store.resumable(FeedPosition(epoch: epoch, sequence: 1).description) }
            #expect(try await store.resumable(FeedPosition(epoch: epoch, sequence: 2).description) == 2)
            await #expect(throws: FlowError.self) { _ = try await store.resumable(FeedPosition(epoch: "abc", sequence: 2).description) }
        }
    }
}
