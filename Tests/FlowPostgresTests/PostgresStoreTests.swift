import FlowCore
@testable import FlowPostgres
import FlowProtocol
import FlowTestSupport
import FlowStoreTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The PostgreSQL store against a real server: the throwaway one `scripts/with-postgres`
/// starts (the README's test command runs the suite through it). Each test gets a database of
/// its own, dropped afterwards.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct PostgresStoreTests {
    static let devices = CollectionSpec(name: "inventory/device", searchFields: ["name"])

    @Test func migrationsRunOnceWhenNodesStartTogether() async throws {
        try await TestDatabase.with { url in
            // Three nodes migrating the same empty database at once: one applies, the others wait and find it done.
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<3 {
                    group.addTask { try await TestDatabase.withStore(url) { store in try await store.migrate() } }
                }
                return try await group.reduce(into: [[Int]]()) { $0.append($1) }
            }
            #expect(applied.filter { !$0.isEmpty }.count == 1, "\(applied)")
            #expect(applied.flatMap { $0 } == PostgresStore.migrations.map(\.version))
            // And again later: nothing to do.
            #expect(try await TestDatabase.withStore(url) { store in try await store.migrate() } == [])
        }
    }

    @Test func objectsAreInsertedReadReplacedAndDeletedWithTheirRevChecked() async throws {
        try await TestDatabase.withMigratedStore { store in
            let created = try await store.insert(Self.devices, id: "sw-1", fields: ["name": "core", "ports": 48, "id": "ignored"])
            #expect(created["id"] == "sw-1" && created["name"] == "core" && created["ports"] == 48)
            #expect(Array(created.keys.prefix(4)) == ["id", "created", "updated", "rev"], "the server fields first, as the SQLite store keeps them")
            let text = try #require(try await store.encodedObject(Self.devices, id: "sw-1"))
            #expect(text == String(decoding: JSONValue.object(created).encoded(), as: UTF8.self), "answered as stored, byte for byte")
            #expect(try await store.encodedObject(Self.devices, id: "nope") == nil)
            #expect(try await store.encodedObject(CollectionSpec(name: "other/thing", searchFields: []), id: "sw-1") == nil)

            #expect(await errorCode { try await store.insert(Self.devices, id: "sw-1", fields: [:]) } == .alreadyExists)

            let rev = try #require(created["rev"]?.stringValue)
            let replaced = try await store.replace(Self.devices, id: "sw-1", expectedRev: rev, fields: ["name": "edge"])
            #expect(replaced["name"] == "edge" && replaced["ports"] == nil && replaced["created"] == created["created"] && replaced["rev"] != created["rev"])
            let stale = await #expect(throws: FlowError.self) { try await store.replace(Self.devices, id: "sw-1", expectedRev: rev, fields: [:]) }
            #expect(stale?.code == .conflict && stale?.data == .object(replaced), "a stale rev is a conflict carrying the current object")
            #expect(await errorCode { try await store.replace(Self.devices, id: "nope", expectedRev: rev, fields: [:]) } == .doNotExist)

            #expect(try await store.count(Self.devices) == 1)
            await #expect(throws: FlowError.self) { try await store.delete(Self.devices, id: "sw-1", expectedRev: rev) }
            #expect(try await store.delete(Self.devices, id: "sw-1", expectedRev: replaced["rev"]?.stringValue) == replaced)
            #expect(try await store.encodedObject(Self.devices, id: "sw-1") == nil)
            #expect(try await store.count(Self.devices) == 0)
            #expect(await errorCode { try await store.delete(Self.devices, id: "sw-1", expectedRev: nil) } == .doNotExist)
            // Without an expected rev a delete is unconditional.
            _ = try await store.insert(Self.devices, id: "sw-2", fields: [:])
            #expect(try await store.delete(Self.devices, id: "sw-2", expectedRev: nil)["id"] == "sw-2")
        }
    }

    /// An object whose search fields hold more distinct words than a `tsvector` takes (1 MiB
    /// in PostgreSQL's accounting: 150,000 words, about a megabyte of text) is stored and
    /// searchable by its first words; without the budget PostgreSQL refuses the write.
    @Test func anObjectWithMoreWordsThanATsvectorHoldsIsStoredAndSearchable() async throws {
        try await TestDatabase.withMigratedStore { store in
            let words = (0..<150_000).map { String(format: "w%06d", $0) }.joined(separator: " ")
            _ = try await store.insert(Self.devices, id: "big", fields: ["name": .string(words)])
            let found = try await store.list(Self.devices, query: ListQuery(search: "w000001"))
            #expect(found.encodedObjects.count == 1)
            let updated = try await store.replace(Self.devices, id: "big", expectedRev: try #require(found.encodedObjects.first.flatMap { try? decodeStoredObject($0)["rev"]?.stringValue }), fields: ["name": .string(words + " tail")])
            #expect(updated["name"] != nil)
        }
    }

    @Test func concurrentWritesOfOneObjectThroughTwoPoolsHaveExactlyOneWinner() async throws {
        try await TestDatabase.with { url in
            try await TestDatabase.withStore(url) { first in
                try await first.migrate()
                try await TestDatabase.withStore(url) { second in
                    let rev = try #require(try await first.insert(Self.devices, id: "hot", fields: ["n": 0])["rev"]?.stringValue)
                    // Twenty writers on two stores (two nodes' pools), all with the same expected rev.
                    let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                        for writer in 0..<20 {
                            let store = writer.isMultiple(of: 2) ? first : second
                            group.addTask {
                                do {
                                    _ = try await store.replace(Self.devices, id: "hot", expectedRev: rev, fields: ["n": .integer(Int64(writer))])
                                    return true
                                } catch let error as FlowError where error.code == .conflict {
                                    return false
                                }
                            }
                        }
                        return try await group.reduce(into: [Bool]()) { $0.append($1) }
                    }
                    #expect(outcomes.filter { $0 }.count == 1, "\(outcomes)")
                    // Two inserts of one id: one wins, the other is told it exists.
                    async let a: Bool = (try? await first.insert(Self.devices, id: "twin", fields: [:])) != nil
                    async let b: Bool = (try? await second.insert(Self.devices, id: "twin", fields: [:])) != nil
                    #expect(await [a, b].filter { $0 }.count == 1)
                    #expect(try await first.count(Self.devices) == 2)
                }
            }
        }
    }

    @Test func aBadStoreURLIsRefusedWithItsReason() {
        for url in ["mysql://u@h/d", "postgres://h/d", "postgres://u@/d", "postgres://u@h/d?sslmode=maybe", "not a url"] {
            #expect(throws: FlowError.self, "\(url)") { _ = try PostgresStore(url: url, logger: Logger(label: "test")) }
        }
    }
}
