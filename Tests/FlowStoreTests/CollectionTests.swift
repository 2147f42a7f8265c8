import FlowCore
import FlowProtocol
import FlowSchema
import FlowStore
import FlowTestSupport
import FlowStoreTestSupport
import Foundation
import Testing

/// A collection on a real store with the real migrations, called through the dispatcher: a
/// SQLite file, or a database on the test PostgreSQL server (``StoreKind``).
struct CollectionHarness: Sendable {
    let store: any CollectionStore & ChangeLog
    let dispatcher: Dispatcher

    static let schema: JSONValue = [
        "type": "object",
        "required": ["name"],
        "properties": ["name": ["type": "string", "minLength": 1], "ports": ["type": "integer", "minimum": 0], "site": ["type": "string"]],
    ]

    /// Runs `body` with a harness on a new store of `kind`, removed afterwards.
    static func with(
        _ kind: StoreKind, methods: Set<FlowProtocol.Method> = [.list, .open, .create, .update, .delete, .index],
        _ body: @escaping @Sendable (CollectionHarness) async throws -> Void
    ) async throws {
        try await kind.withStore { store in try await body(try CollectionHarness(store: store, methods: methods)) }
    }

    init(store: any CollectionStore & ChangeLog, methods: Set<FlowProtocol.Method>) throws {
        self.store = store
        let registry = EndpointRegistry()
        let definition = EndpointDefinition(namespace: Namespace("inventory/device")!, title: "Devices", kind: .collection, methods: methods, schema: Self.schema)
        try registry.register(CollectionEndpoint(definition: definition, searchFields: ["name", "site"], store: self.store, validator: try JSONSchema(Self.schema)))
        self.dispatcher = Dispatcher(registry: registry, authenticator: OpenAccessAuthenticator(), policy: OpenAccessPolicy(), logger: .silent)
    }

    func call(_ method: FlowProtocol.Method, _ objectid: String? = nil, parameters: JSONValue? = nil, data: JSONValue? = nil) async -> Response {
        let envelope = Envelope(method: method, namespace: Namespace("inventory/device"), objectid: objectid, parameters: parameters, data: data)
        return await self.dispatcher.dispatch(CallRequest(envelope: envelope, origin: CallOrigin(transport: .websocket))).response
    }

}

/// Every test runs on both stores (SPEC §12: every rule of §7 holds on each).
@Suite(.serialized, .timeLimit(.minutes(3))) struct CollectionTests {
    @Test(arguments: StoreKind.allCases)
    func createOpenUpdateDeleteIndex(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let created = await harness.call(.create, data: ["name": "core-sw", "ports": 48, "site": "HQ", "rev": "ignored"])
            #expect(created.success)
            let object = try #require(created.data?.objectValue)
            let id = try #require(object["id"]?.stringValue)
            #expect(UUID(uuidString: id) != nil)
            #expect(Array(object.keys.prefix(4)) == ["id", "created", "updated", "rev"])
            #expect(object["rev"] != "ignored")
            #expect(object["created"] == object["updated"])

            #expect(await harness.call(.open, id).data == created.data)
            let update = await harness.call(.update, id, data: ["ports": 52, "site": .null])
            let updated = try #require(update.data?.objectValue)
            #expect(updated["ports"] == 52)
            #expect(updated["site"] == nil)
            #expect(updated["name"] == "core-sw")
            #expect(updated["created"] == object["created"])
            #expect(updated["rev"] != object["rev"])

            let index = await harness.call(.index, id)
            #expect(index.data == ["id": .string(id), "rev": updated["rev"]!, "updated": updated["updated"]!, "fields": ["name": "core-sw", "site": .null]])

            let deleted = await harness.call(.delete, id)
            #expect(deleted.data == update.data)
            #expect(await harness.call(.open, id).errorcode == .doNotExist)
            #expect(await harness.call(.delete, id).errorcode == .doNotExist)
            #expect(await harness.call(.update, id, data: ["name": "x"]).errorcode == .doNotExist)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func clientChosenIDsAndClashes(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            #expect(await harness.call(.create, data: ["id": "sw-1", "name": "a"]).data?["id"] == "sw-1")
            let clash = await harness.call(.create, data: ["id": "sw-1", "name": "b"])
            #expect(clash.errorcode == .alreadyExists)
            #expect(await harness.call(.open, "sw-1").data?["name"] == "a")
            #expect(await harness.call(.create, data: ["id": "a/b", "name": "c"]).errorcode == .validationFailed)
            #expect(await harness.call(.create, data: ["id": 5, "name": "c"]).errorcode == .validationFailed)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func validationOnCreateAndAfterMerging(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let bad = await harness.call(.create, data: ["ports": -1])
            #expect(bad.errorcode == .validationFailed)
            #expect(bad.data == ["errors": [["path": "/name", "message": "is required"], ["path": "/ports", "message": "must be at least 0"]]])
            #expect(await harness.call(.create, data: "text").errorcode == .invalidRequest)
            let id = try #require(await harness.call(.create, data: ["name": "ok"]).data?["id"]?.stringValue)
            // Removing a required field by patch is refused, and nothing changes.
            let removal = await harness.call(.update, id, data: ["name": .null])
            #expect(removal.errorcode == .validationFailed)
            #expect(await harness.call(.open, id).data?["name"] == "ok")
            #expect(await harness.call(.update, id, data: ["a", "b"]).errorcode == .invalidRequest)
            #expect(await harness.call(.run, id, data: [:]).errorcode == .methodNotAllowed)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func staleRevIsConflictWithTheCurrentObject(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let first = try #require(await harness.call(.create, data: ["name": "a"]).data)
            let id = try #require(first["id"]?.stringValue)
            let rev = try #require(first["rev"]?.stringValue)
            let second = await harness.call(.update, id, parameters: ["rev": .string(rev)], data: ["name": "b"])
            #expect(second.success)
            let stale = await harness.call(.update, id, parameters: ["rev": .string(rev)], data: ["name": "c"])
            #expect(stale.errorcode == .conflict)
            #expect(stale.data == second.data)
            #expect(await harness.call(.delete, id, parameters: ["rev": .string(rev)]).errorcode == .conflict)
            #expect(await harness.call(.update, id, parameters: ["rev": 5], data: ["name": "c"]).errorcode == .invalidRequest)
            let currentRev = try #require(second.data?["rev"])
            #expect(await harness.call(.delete, id, parameters: ["rev": currentRev]).success)
        }
    }

    /// Eight writers race on one object with `rev`: per round exactly one wins, nothing is lost.
    @Test(arguments: StoreKind.allCases)
    func concurrentWritersWithRevOneWinsPerRound(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let id = try #require(await harness.call(.create, data: ["name": "counter", "ports": 0]).data?["id"]?.stringValue)
            for round in 1...10 {
                let current = try #require(await harness.call(.open, id).data)
                let rev = try #require(current["rev"])
                let ports = try #require(current["ports"].flatMap { if case .integer(let value) = $0 { value } else { nil } })
                let results = await withTaskGroup(of: Response.self, returning: [Response].self) { group in
                    for _ in 0..<8 {
                        group.addTask { await harness.call(.update, id, parameters: ["rev": rev], data: ["ports": .integer(ports + 1)]) }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.filter(\.success).count == 1, "round \(round)")
                #expect(results.filter { $0.errorcode == .conflict }.count == 7, "round \(round)")
            }
            #expect(await harness.call(.open, id).data?["ports"] == 10)
        }
    }

    /// Writers without `rev` never lose each other's changes: an UPDATE merges and validates
    /// outside the write, and merges again when another write came in between.
    @Test(arguments: StoreKind.allCases)
    func concurrentUpdatesWithoutRevAllApply(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let id = try #require(await harness.call(.create, data: ["name": "shared"]).data?["id"]?.stringValue)
            let results = await withTaskGroup(of: Response.self, returning: [Response].self) { group in
                for index in 0..<6 {
                    group.addTask { await harness.call(.update, id, data: .object(["field\(index)": .integer(Int64(index))])) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let failures = results.filter { !$0.success }.compactMap(\.message)
            #expect(failures.isEmpty, "\(failures)")
            let object = try #require(await harness.call(.open, id).data)
            for index in 0..<6 { #expect(object["field\(index)"] == .integer(Int64(index))) }
            #expect(object["name"] == "shared")
        }
    }

    /// SPEC §11: LIST parameters are bounded and never reach SQLite's own limits (a 500).
    @Test(arguments: StoreKind.allCases)
    func listParametersAreBounded(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            _ = await harness.call(.create, data: ["name": "core switch"])
            var manyFields = JSONObject()
            for index in 0..<2000 { manyFields["f\(index)"] = "x" }
            #expect(await harness.call(.list, parameters: ["filter": .object(manyFields)]).errorcode == .invalidRequest)
            var sixteen = JSONObject()
            for index in 0..<16 { sixteen["f\(index)"] = .null }
            #expect(await harness.call(.list, parameters: ["filter": .object(sixteen)]).success)
            #expect(await harness.call(.list, parameters: ["search": .string(String(repeating: "a ", count: 200))]).errorcode == .invalidRequest)
            #expect(await harness.call(.list, parameters: ["search": "core\u{0}"]).errorcode == .invalidRequest)
            #expect(await harness.call(.list, parameters: ["cursor": .string(String(repeating: "A", count: 5000))]).errorcode == .invalidRequest)
            for odd in ["***", "\"", "AND OR NOT", "NEAR(", "😀", "-x", "\u{301}"] {
                let response = await harness.call(.list, parameters: ["search": .string(odd)])
                #expect(response.success, "search \(odd.debugDescription): \(response.message ?? "")")
            }
            #expect(await harness.call(.list, parameters: ["search": "core"]).data?.arrayValue?.count == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listPagingSortFilterAndSearch(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let sites = ["Zürich", "Berlin", "Oslo"]
            for index in 0..<25 {
                let response = await harness.call(.create, data: ["id": .string(String(format: "d%02d", index)), "name": .string("switch \(index)"), "ports": .integer(Int64(index % 5)), "site": .string(sites[index % 3])])
                #expect(response.success)
            }
            let first = await harness.call(.list, parameters: ["limit": 10])
            #expect(first.data?.arrayValue?.count == 10)
            #expect(first.paging?["total"] == 25)
            #expect(first.data?.arrayValue?.first?["id"] == "d00")
            let next = try #require(first.paging?["next"])
            let second = await harness.call(.list, parameters: ["limit": 10, "cursor": next])
            #expect(second.data?.arrayValue?.first?["id"] == "d10")
            #expect(second.paging?["total"] == nil)

            let byPortsDesc = await harness.call(.list, parameters: ["sort": "ports", "order": "desc", "limit": 7])
            #expect(byPortsDesc.data?.arrayValue?.prefix(5).allSatisfy { $0["ports"] == 4 } == true)
            let filtered = await harness.call(.list, parameters: ["filter": ["site": "Oslo", "ports": 2]])
            #expect(filtered.data?.arrayValue?.map { $0["id"]! } == ["d02", "d17"])

            let search = await harness.call(.list, parameters: ["search": "zuri"])
            #expect(search.data?.arrayValue?.count == 9)
            #expect(search.paging?["total"] == 9)
            let words = await harness.call(.list, parameters: ["search": "switch 1 berl"])
            #expect(words.data?.arrayValue?.map { $0["id"]! } == ["d01", "d10", "d13", "d16", "d19"])
            #expect(await harness.call(.list, parameters: ["search": "\" OR ( *"]).success)
            // Field names are any text but `"` and control characters, quoted in the JSON path.
            #expect(await harness.call(.list, parameters: ["sort": "a b", "filter": ["x.y": 1, "é[0]": "z"]]).success)

            for bad: JSONValue in [
                ["limit": 0], ["limit": 1001], ["limit": "5"], ["order": "up"], ["sort": "a\"b"], ["sort": ""], ["cursor": "nonsense"], ["cursor": "ab+c/="],
                ["cursor": 5], ["filter": ["a": [1]]], ["filter": ["a\u{1}b": 1]], ["filter": "a"], ["search": 1], "text",
                ["sort": .string(String(repeating: "f", count: 65))],
            ] {
                #expect(await harness.call(.list, parameters: bad).errorcode == .invalidRequest, "\(bad)")
            }
        }
    }

    /// Keyset paging: walking to the end while another task inserts returns every row that
    /// existed before the walk exactly once.
    @Test(arguments: StoreKind.allCases, [nil, "name", "id"] as [String?])
    func pagingIsStableUnderConcurrentInserts(_ kind: StoreKind, sort: String?) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            var existing = Set<String>()
            for index in 0..<120 {
                let id = try #require(await harness.call(.create, data: ["name": .string("n\(1000 - index)")]).data?["id"]?.stringValue)
                existing.insert(id)
            }
            let inserter = Task {
                for index in 0..<120 { _ = await harness.call(.create, data: ["name": .string("new \(index)")]) }
            }
            var seen: [String] = []
            var cursor: JSONValue?
            repeat {
                var parameters: JSONObject = ["limit": 7]
                if let sort { parameters["sort"] = .string(sort) }
                if let cursor { parameters["cursor"] = cursor }
                let page = await harness.call(.list, parameters: .object(parameters))
                #expect(page.success)
                seen += page.data?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                cursor = page.paging?["next"]
            } while cursor != nil
            await inserter.value
            #expect(Set(seen).count == seen.count, "no duplicates")
            #expect(existing.isSubset(of: Set(seen)), "no pre-existing row skipped")
        }
    }
}

@Suite struct MergePatchTests {
    /// RFC 7386 appendix A.
    @Test(arguments: [
        (#"{"a":"b"}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"b"}"#, #"{"b":"c"}"#, #"{"a":"b","b":"c"}"#),
        (#"{"a":"b"}"#, #"{"a":null}"#, #"{}"#),
        (#"{"a":"b","b":"c"}"#, #"{"a":null}"#, #"{"b":"c"}"#),
        (#"{"a":["b"]}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"c"}"#, #"{"a":["b"]}"#, #"{"a":["b"]}"#),
        (#"{"a":{"b":"c"}}"#, #"{"a":{"b":"d","c":null}}"#, #"{"a":{"b":"d"}}"#),
        (#"{"a":[{"b":"c"}]}"#, #"{"a":[1]}"#, #"{"a":[1]}"#),
        (#"["a","b"]"#, #"["c","d"]"#, #"["c","d"]"#),
        (#"{"a":"b"}"#, #"["c"]"#, #"["c"]"#),
        (#"{"a":"foo"}"#, #"null"#, #"null"#),
        (#"{"a":"foo"}"#, #""bar""#, #""bar""#),
        (#"{"e":null}"#, #"{"a":1}"#, #"{"e":null,"a":1}"#),
        (#"[1,2]"#, #"{"a":"b","c":null}"#, #"{"a":"b"}"#),
        (#"{}"#, #"{"a":{"bb":{"ccc":null}}}"#, #"{"a":{"bb":{}}}"#),
    ])
    func rfc7386Examples(_ original: String, _ patch: String, _ result: String) throws {
        #expect(try JSONValue(parsing: original).mergePatched(with: JSONValue(parsing: patch)) == JSONValue(parsing: result))
    }
}
