import FlowCore
import FlowProtocol
@testable import FlowStore
import Foundation
import GRDB
import Testing

/// Declared indexes (`indexes` in a definition): SQLite answers a filtered, sorted LIST from the
/// index (checked with EXPLAIN QUERY PLAN), the pages are the same as without it, and the
/// indexes follow the definitions.
@Suite struct DeclaredIndexTests {
    static let declared = CollectionSpec(name: "inventory/device", searchFields: ["name"], indexes: [["site", "name"], ["status"]])
    static let undeclared = CollectionSpec(name: "inventory/device", searchFields: ["name"])

    /// A store on a fresh file; removed by `cleanUp`.
    struct Store {
        let folder: URL
        let store: SQLiteStore

        init(metrics: GatewayMetrics = .disabled) throws {
            self.folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-index-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: self.folder, withIntermediateDirectories: true)
            self.store = try SQLiteStore(path: self.folder.appendingPathComponent("flowgate.sqlite").path, metrics: metrics)
        }

        func plan(_ spec: CollectionSpec, _ query: ListQuery) throws -> String {
            let (sql, arguments) = try ListStatement(collection: spec, query: query).pageQuery()
            return try self.explain(sql, arguments)
        }

        func explain(_ sql: String, _ arguments: StatementArguments) throws -> String {
            try self.store.writer.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }.joined(separator: "\n")
            }
        }

        func indexes() throws -> Set<String> {
            Set(try self.store.writer.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name GLOB 'object_index_*'") })
        }

        func cleanUp() { try? FileManager.default.removeItem(at: self.folder) }
    }

    /// Values of every kind the filter and sort see: strings, integers, doubles, booleans, null and missing.
    static func seed(_ store: SQLiteStore, count: Int) async throws {
        let sites: [JSONValue] = ["HQ", "Oslo", "Zürich", .null, 7, 2.5, true]
        for index in 0..<count {
            var fields: JSONObject = ["name": .string("n\((index * 37) % 101)"), "status": index % 4 == 0 ? "retired" : "active"]
            if index % 11 != 0 { fields["site"] = sites[index % sites.count] }
            if index % 13 == 0 { fields["name"] = nil }
            _ = try await store.insert(Self.declared, id: String(format: "d%04d", index), fields: fields)
        }
    }

    @Test func aFilteredSortedListWalksTheDeclaredIndex() async throws {
        let store = try Store()
        defer { store.cleanUp() }
        try await Self.seed(store.store, count: 60)
        let built = try await store.store.declareIndexes([Self.declared])
        #expect(built == IndexChanges(built: [["site", "name"], ["status"]].sorted { SQLiteStore.indexName($0) < SQLiteStore.indexName($1) }))
        let siteName = SQLiteStore.indexName(["site", "name"])
        let status = SQLiteStore.indexName(["status"])

        let first = ListQuery(limit: 3, sort: "name", filter: ["site": "Oslo"])
        let page = try await store.store.list(Self.declared, query: first)
        let next = try #require(page.next)
        for query in [first, ListQuery(limit: 3, cursor: next, sort: "name", filter: ["site": "Oslo"]), ListQuery(limit: 10, sort: "name", descending: true, filter: ["site": .null])] {
            let plan = try store.plan(Self.declared, query)
            #expect(plan.contains("USING INDEX \(siteName) (collection=? AND <expr>=?"), "\(plan)")
            #expect(!plan.contains("TEMP B-TREE"), "\(plan)")
        }
        // A next page starts in the index where the last one ended (a range, not a scan from the start).
        let nextPlan = try store.plan(Self.declared, ListQuery(limit: 3, cursor: next, sort: "name", descending: true, filter: ["site": "Oslo"]))
        #expect(nextPlan.contains("(collection=? AND <expr>=? AND <expr><?)"), "\(nextPlan)")
        let insertionNext = try store.plan(Self.undeclared, ListQuery(limit: 3, cursor: Cursor(key: 5.databaseValue, seq: 5).text))
        #expect(insertionNext.contains("USING INDEX object_by_seq (collection=? AND seq>?)"), "\(insertionNext)")
        // A filter alone: the index's (value, seq) order is the insertion order a LIST without sort walks.
        let byStatus = try store.plan(Self.declared, ListQuery(limit: 10, filter: ["status": "active"]))
        #expect(byStatus.contains("USING INDEX \(status) (collection=? AND <expr>=?)"), "\(byStatus)")
        #expect(!byStatus.contains("TEMP B-TREE"), "\(byStatus)")
        // A sort alone walks the index in order.
        let sorted = try store.plan(Self.declared, ListQuery(limit: 10, sort: "status", descending: true))
        #expect(sorted.contains("USING INDEX \(status)"), "\(sorted)")
        #expect(!sorted.contains("TEMP B-TREE"), "\(sorted)")
        // The same query on an undeclared collection scans and sorts: what the index saves.
        let undeclared = try store.plan(Self.undeclared, first)
        #expect(!undeclared.contains("object_index_"), "\(undeclared)")
        #expect(undeclared.contains("TEMP B-TREE"), "\(undeclared)")
    }

    /// The declared expressions are the undeclared ones' semantics: same pages, same totals, for
    /// every filter and sort, both orders, walked to the end.
    @Test func declaredAndUndeclaredListsAgree() async throws {
        let store = try Store()
        defer { store.cleanUp() }
        try await Self.seed(store.store, count: 90)
        _ = try await store.store.declareIndexes([Self.declared])
        let filters: [[String: JSONValue]] = [[:], ["site": "Oslo"], ["site": .null], ["site": 7], ["site": 7.0], ["site": 2.5], ["site": true], ["status": "retired", "site": "HQ"], ["site": "nowhere"]]
        for filter in filters {
            for sort in [nil, "name", "site", "status", "id"] as [String?] {
                for descending in [false, true] {
                    let walk = { (spec: CollectionSpec) async throws -> ([String], Int?) in
                        var ids: [String] = []
                        var cursor: String?
                        var total: Int?
                        repeat {
                            let page = try await store.store.list(spec, query: ListQuery(limit: 7, cursor: cursor, sort: sort, descending: descending, filter: filter))
                            if cursor == nil { total = page.total }
                            ids += try page.encodedObjects.map { try decodeStoredObject($0)["id"]?.stringValue ?? "" }
                            cursor = page.next
                        } while cursor != nil
                        return (ids, total)
                    }
                    let (indexed, indexedTotal) = try await walk(Self.declared)
                    let (plain, plainTotal) = try await walk(Self.undeclared)
                    #expect(indexed == plain, "filter \(filter) sort \(sort ?? "-") \(descending ? "desc" : "asc")")
                    #expect(indexedTotal == plainTotal, "filter \(filter) sort \(sort ?? "-")")
                    if let indexedTotal { #expect(indexedTotal == plain.count, "filter \(filter) sort \(sort ?? "-")") }
                }
            }
        }
    }

    @Test func indexesFollowTheDefinitions() async throws {
        let store = try Store()
        defer { store.cleanUp() }
        let a = CollectionSpec(name: "a/one", indexes: [["site"], ["site", "name"]])
        let b = CollectionSpec(name: "b/two", indexes: [["site"]])
        #expect(try await store.store.declareIndexes([a, b]).built.count == 2, "a shared field list is one index")
        #expect(try store.indexes() == [SQLiteStore.indexName(["site"]), SQLiteStore.indexName(["site", "name"])])
        #expect(try await store.store.declareIndexes([a, b]) == IndexChanges(), "declaring again changes nothing")
        let changed = try await store.store.declareIndexes([CollectionSpec(name: "a/one", indexes: [["name"]])])
        #expect(changed.built == [["name"]])
        #expect(Set(changed.dropped) == [SQLiteStore.indexName(["site"]), SQLiteStore.indexName(["site", "name"])])
        #expect(try await store.store.declareIndexes([]).dropped == [SQLiteStore.indexName(["name"])])
        #expect(try store.indexes().isEmpty)
        // Index names are fixed by the field list: a stored database keeps its meaning across versions.
        #expect(SQLiteStore.indexName(["site", "name"]).wholeMatch(of: /object_index_[0-9a-f]{16}/) != nil)
        #expect(SQLiteStore.indexName(["site", "name"]) != SQLiteStore.indexName(["name", "site"]))
        #expect(SQLiteStore.indexName(["ab", "c"]) != SQLiteStore.indexName(["a", "bc"]))
    }

    /// `total`: the kept count without filter (after inserts and deletes, whatever the page
    /// size); with a filter, the page's own count when it holds every match, else none.
    @Test func totalIsKeptOrGivenWhenThePageHoldsEveryMatch() async throws {
        let store = try Store()
        defer { store.cleanUp() }
        let spec = CollectionSpec(name: "t/big", indexes: [["kind"]])
        _ = try await store.store.declareIndexes([spec])
        for index in 0..<120 {
            _ = try await store.store.insert(spec, id: "o\(index)", fields: ["kind": index < 15 ? "rare" : "common", "other": index < 15 ? "rare" : "common"])
        }
        _ = try await store.store.delete(spec, id: "o0", expectedRev: nil)
        _ = try await store.store.insert(CollectionSpec(name: "t/other"), id: "x", fields: [:])
        #expect(try await store.store.list(spec, query: ListQuery(limit: 5)).total == 119)
        #expect(try await store.store.list(spec, query: ListQuery(limit: 14, filter: ["kind": "rare"])).total == 14)
        #expect(try await store.store.list(spec, query: ListQuery(limit: 100, filter: ["other": "rare"])).total == 14, "undeclared too")
        #expect(try await store.store.list(spec, query: ListQuery(limit: 13, filter: ["kind": "rare"])).total == nil, "more than a page")
        #expect(try await store.store.list(spec, query: ListQuery(limit: 5, filter: ["kind": "none"])).total == 0)
        #expect(try await store.store.list(spec, query: ListQuery(limit: 5, search: "\"  \"")).total == 119, "a search of nothing is no search")
        #expect(try await store.store.list(CollectionSpec(name: "t/empty"), query: ListQuery(limit: 5)).total == 0)
    }

    /// Migration v6 counts the objects a database already had.
    @Test func theCountMigrationCountsExistingObjects() throws {
        let queue = try DatabaseQueue()
        try SQLiteStore.migrator.migrate(queue, upTo: "v5: change log")
        try queue.write { db in
            for (index, collection) in ["a/x", "a/x", "a/x", "b/y"].enumerated() {
                try db.execute(sql: "INSERT INTO object (collection, id, seq, rev, body) VALUES (?, ?, ?, 'r', '{}')", arguments: [collection, "i\(index)", index])
            }
        }
        try SQLiteStore.migrator.migrate(queue)
        let counts = try queue.read { db in try Row.fetchAll(db, sql: "SELECT collection, objects FROM collection_count ORDER BY collection").map { "\($0[0] as String)=\($0[1] as Int)" } }
        #expect(counts == ["a/x=3", "b/y=1"])
    }
}
