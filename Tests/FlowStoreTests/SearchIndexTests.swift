import FlowCore
import FlowProtocol
import FlowTestSupport
import FlowStoreTestSupport
import Foundation
import GRDB
import Testing

@testable import FlowStore

@Suite struct SearchIndexTests {
    /// The search rows follow every write: an update replaces the words, a delete removes them,
    /// and a search never returns another collection's objects.
    @Test(arguments: StoreKind.allCases)
    func searchFollowsUpdatesAndDeletes(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            #expect(await harness.call(.create, data: ["id": "a", "name": "edge router", "site": "Basel"]).success)
            #expect(await harness.call(.create, data: ["id": "b", "name": "core switch", "site": "Basel"]).success)
            func found(_ text: String) async -> [JSONValue] {
                await harness.call(.list, parameters: ["search": .string(text)]).data?.arrayValue?.map { $0["id"] ?? .null } ?? []
            }
            #expect(await found("basel") == ["a", "b"])
            #expect(await harness.call(.update, "a", data: ["name": "edge firewall"]).success)
            #expect(await found("router") == [])
            #expect(await found("firewall") == ["a"])
            #expect(await harness.call(.delete, "b").success)
            #expect(await found("basel") == ["a"])
            _ = try await harness.store.insert(CollectionSpec(name: "other/thing", searchFields: ["name"]), id: "c", fields: ["name": "edge"])
            #expect(await found("edge") == ["a"])
        }
    }

    /// A database written by the v1 schema keeps its search rows through the v2 migration.
    @Test func version1DatabasesMigrateTheirSearchRows() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-migrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("flowgate.sqlite").path
        do {
            let queue = try DatabaseQueue(path: path)
            try SQLiteStore.migrator.migrate(queue, upTo: "v1: collections")
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO object (collection, id, seq, rev, body) VALUES ('inventory/device', 'x', 7, 'r1', '{"id":"x","created":"c","updated":"u","rev":"r1","name":"old router"}');
                    INSERT INTO object_search (collection, id, content) VALUES ('inventory/device', 'x', 'old router');
                    INSERT INTO counter (name, value) VALUES ('object', 7);
                    """)
            }
        }
        let store = try SQLiteStore(path: path)
        let spec = CollectionSpec(name: "inventory/device", searchFields: ["name"])
        #expect(try await store.list(spec, query: ListQuery(search: "router")).encodedObjects.count == 1)
        let stored = try #require(try await store.encodedObject(spec, id: "x"))
        let rev = try #require(try decodeStoredObject(stored)["rev"]?.stringValue)
        _ = try await store.replace(spec, id: "x", expectedRev: rev, fields: ["name": "new switch"])
        #expect(try await store.list(spec, query: ListQuery(search: "router")).encodedObjects.isEmpty)
        #expect(try await store.list(spec, query: ListQuery(search: "switch")).encodedObjects.count == 1)
    }
}
