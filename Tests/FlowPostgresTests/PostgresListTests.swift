import FlowCore
import FlowPostgres
import FlowProtocol
import FlowStore
import FlowTestSupport
import FlowStoreTestSupport
import Foundation
import Testing

/// LIST on PostgreSQL is LIST on SQLite: the same objects, written in the same order to both
/// stores, give the same pages and totals for every filter and sort, both orders, walked to the
/// end page by page with the cursors each store hands out.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct PostgresListTests {
    static let devices = CollectionSpec(name: "inventory/device", searchFields: ["name"])

    /// Values of every kind the filter and sort see: strings (with bytes past ASCII), integers,
    /// doubles, booleans, null, missing, an array and an object.
    static func fieldsOf(_ index: Int) -> JSONObject {
        let sites: [JSONValue] = ["HQ", "Oslo", "Zürich", .null, 7, 2.5, true, "hq", 7.0, false, "Ångström", -3, 1e20, ["a", 1], ["k": "v"]]
        var fields: JSONObject = ["name": .string("n\((index * 37) % 101)"), "status": index % 4 == 0 ? "retired" : "active", "rank": .integer(Int64(index % 5))]
        if index % 11 != 0 { fields["site"] = sites[index % sites.count] }
        if index % 13 == 0 { fields["name"] = nil }
        return fields
    }

    @Test func pagesAndTotalsAreTheSQLiteStoresForEveryFilterAndSort() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-pglist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let sqlite = try SQLiteStore(path: folder.appendingPathComponent("flowgate.sqlite").path)
        try await TestDatabase.withMigratedStore { postgres in
            for index in 0..<120 {
                let id = String(format: "d%04d", (index * 53) % 120)  // ids out of insertion order
                _ = try await sqlite.insert(Self.devices, id: id, fields: Self.fieldsOf(index))
                _ = try await postgres.insert(Self.devices, id: id, fields: Self.fieldsOf(index))
            }
            let filters: [[String: JSONValue]] = [
                [:], ["site": "Oslo"], ["site": .null], ["site": 7], ["site": 7.0], ["site": 2.5], ["site": true], ["site": false], ["site": 1],
                ["site": "hq"], ["site": "Zürich"], ["status": "retired", "site": "HQ"], ["site": "nowhere"], ["rank": 3], ["missing": .null], ["site": -3],
            ]
            var walks = 0
            for filter in filters {
                for sort in [nil, "name", "site", "status", "id", "rank", "created", "missing"] as [String?] {
                    for descending in [false, true] {
                        let query = { (cursor: String?) in ListQuery(limit: 7, cursor: cursor, sort: sort, descending: descending, filter: filter) }
                        let (expected, expectedTotal) = try await Self.walk { try await sqlite.list(Self.devices, query: query($0)) }
                        let (actual, actualTotal) = try await Self.walk { try await postgres.list(Self.devices, query: query($0)) }
                        let label = "filter \(filter) sort \(sort ?? "-") \(descending ? "desc" : "asc")"
                        #expect(actual == expected, "\(label)")
                        #expect(actualTotal == expectedTotal, "\(label)")
                        walks += 1
                    }
                }
            }
            #expect(walks == filters.count * 16)
            // Cursors are the SQLite store's format: a page's cursor from one store continues the walk on the other.
            let first = try await postgres.list(Self.devices, query: ListQuery(limit: 10, sort: "site"))
            let next = try #require(first.next)
            let fromSQLite = try await sqlite.list(Self.devices, query: ListQuery(limit: 10, cursor: next, sort: "site"))
            let fromPostgres = try await postgres.list(Self.devices, query: ListQuery(limit: 10, cursor: next, sort: "site"))
            #expect(fromSQLite.encodedObjects.map(Self.id) == fromPostgres.encodedObjects.map(Self.id))
            // A cursor that is not one is refused as the SQLite store refuses it.
            await #expect(throws: FlowError.self) { try await postgres.list(Self.devices, query: ListQuery(cursor: "not-a-cursor")) }
        }
    }

    /// Search finds what FTS5 finds: words as prefixes, without case or diacritics, all of them.
    @Test func searchFindsWhatTheSQLiteStoreFinds() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-pgsearch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let sqlite = try SQLiteStore(path: folder.appendingPathComponent("flowgate.sqlite").path)
        let names: [JSONValue] = [
            "core-sw Zürich", "Edge Router", "ångström lab", "CORE switch 2", "mail x.com/a", "Zurich backup", "naïve café", "r2d2 unit",
            ["tag one", "Two"], 42, .null, "sw-core-03", "Café CRÈME", "under_score word", "日本語 テキスト",
        ]
        try await TestDatabase.withMigratedStore { postgres in
            for (index, name) in names.enumerated() {
                var fields: JSONObject = ["name": name, "site": index % 2 == 0 ? "HQ" : "Oslo"]
                if index == 3 { fields["site"] = "Café" }
                for store in [sqlite as any CollectionStore, postgres] {
                    _ = try await store.insert(Self.searchable, id: "s\(index)", fields: fields)
                }
            }
            // Later writes replace an object's words.
            for store in [sqlite as any CollectionStore, postgres] {
                let rev = try decodeStoredObject(try #require(try await store.encodedObject(Self.searchable, id: "s1")))["rev"]!.stringValue!
                _ = try await store.replace(Self.searchable, id: "s1", expectedRev: rev, fields: ["name": "renamed gateway", "site": "HQ"])
            }
            let searches = [
                "core", "CORE", "zur", "zür", "ZURICH", "ang", "ångström", "x", "com", "core-sw", "sw", "core sw", "cafe", "CAFÉ crème", "naive",
                "edge", "renamed", "gate", "42", "4", "two", "tag", "r2", "d2", "unit r2d2", "under", "score", "日本", "テキ", "HQ", "oslo", "nothing",
                "", "   ", "\"", "\"core\"", "c*", "-", "core OR edge", "co re",
            ]
            for search in searches {
                for sort in [nil, "name"] as [String?] {
                    let query = { (cursor: String?) in ListQuery(limit: 4, cursor: cursor, sort: sort, search: search) }
                    let (expected, expectedTotal) = try await Self.walk { try await sqlite.list(Self.searchable, query: query($0)) }
                    let (actual, actualTotal) = try await Self.walk { try await postgres.list(Self.searchable, query: query($0)) }
                    #expect(actual == expected, "search \(search.debugDescription) sort \(sort ?? "-")")
                    #expect(actualTotal == expectedTotal, "search \(search.debugDescription)")
                }
            }
        }
    }

    static let searchable = CollectionSpec(name: "inventory/device", searchFields: ["name", "site"])

    static func id(_ text: String) -> String {
        (try? decodeStoredObject(text)["id"]?.stringValue) ?? ""
    }

    /// Every page's ids, in order, and the first page's total.
    static func walk(_ page: (String?) async throws -> ListPage) async throws -> ([String], Int?) {
        var ids: [String] = []
        var cursor: String?
        var total: Int?
        var pages = 0
        repeat {
            let result = try await page(cursor)
            if cursor == nil { total = result.total }
            ids += result.encodedObjects.map(Self.id)
            cursor = result.next
            pages += 1
        } while cursor != nil && pages < 100
        return (ids, total)
    }
}
