import FlowCore
import FlowProtocol
import FlowStore
import FlowTestSupport
import FlowStoreTestSupport
import Foundation
import Testing

/// The change log (SPEC §13.2) on each store: written with each write, in commit order,
/// only when the write commits; positions that resume, and those that cannot.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ChangeLogTests {
    @Test(arguments: StoreKind.allCases)
    func everyCommittedWriteIsLoggedInOrderAndNothingElse(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let received = Locked<[Change]>([])
            harness.store.onCommit { change in received.withLock { $0.append(change) } }

            let created = try #require(await harness.call(.create, data: ["id": "a", "name": "first"]).data?.objectValue)
            #expect(await harness.call(.update, "a", data: ["name": "second"]).success)
            // Refused writes leave no trace: a conflict, a duplicate id, a missing object.
            #expect(await harness.call(.update, "a", parameters: ["rev": created["rev"]!], data: ["name": "x"]).errorcode == .conflict)
            #expect(await harness.call(.create, data: ["id": "a", "name": "again"]).errorcode == .alreadyExists)
            #expect(await harness.call(.delete, "missing").errorcode == .doNotExist)
            #expect(await harness.call(.delete, "a").success)

            let logged = try await harness.store.changes(after: 0, namespace: "inventory/device", objectid: nil, limit: 100)
            #expect(logged.map(\.kind) == [.created, .updated, .deleted])
            #expect(logged.map(\.position) == [1, 2, 3])
            #expect(logged.allSatisfy { $0.objectid == "a" })
            let update = logged[1]
            #expect(try decodeStoredObject(update.previous!)["name"] == "first")
            #expect(try decodeStoredObject(update.body)["name"] == "second")
            #expect(try decodeStoredObject(logged[2].body)["name"] == "second", "a delete logs the object's last state")
            #expect(received.withLock { $0.map(\.position) } == [1, 2, 3])
            #expect(try await harness.store.changes(after: 1, namespace: "inventory/device", objectid: "a", limit: 1).map(\.position) == [2])
            #expect(try await harness.store.changes(after: 0, namespace: "other/thing", objectid: nil, limit: 100).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aListCarriesThePositionItsRowsReflect(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let empty = await harness.call(.list)
            let epoch = harness.store.epoch
            #expect(empty.paging?["position"] == .string("\(epoch).0"))
            for index in 0..<3 { #expect(await harness.call(.create, data: ["name": .string("n\(index)")]).success) }
            let listed = await harness.call(.list, parameters: ["limit": 1])
            #expect(listed.paging?["position"] == .string("\(epoch).3"))
            #expect(try await harness.store.resumable("\(epoch).3") == 3)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func positionsThatCannotResumeAreRefused(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            for index in 0..<20 { #expect(await harness.call(.create, data: ["name": .string("n\(index)")]).success) }
            let epoch = harness.store.epoch
            #expect(try await harness.store.prune(ChangeRetention(maxChanges: 5)) == 15)
            #expect(try await harness.store.bounds() == (20, 15))
            #expect(try await harness.store.changes(after: 0, namespace: "inventory/device", objectid: nil, limit: 100).map(\.position) == Array(16...20))
            #expect(try await harness.store.resumable("\(epoch).15") == 15, "every change after 15 is still kept")
            #expect(await errorCode { try await harness.store.resumable("\(epoch).14") } == .cursorExpired)
            #expect(await errorCode { try await harness.store.resumable("\(epoch).21") } == .cursorExpired)
            #expect(await errorCode { try await harness.store.resumable("zzzz.20") } == .cursorExpired)
            for garbage in ["", "20", "\(epoch).", "\(epoch).-1", ".5", "\(epoch).5 ", "ÿ.5", String(repeating: "a", count: 80) + ".1"] {
                #expect(await errorCode { try await harness.store.resumable(garbage) } == .invalidRequest, "\(garbage)")
            }
            // Pruning everything keeps the positions increasing.
            #expect(try await harness.store.prune(ChangeRetention(maxChanges: 0)) == 5)
            #expect(await harness.call(.create, data: ["name": "after"]).success)
            #expect(try await harness.store.changes(after: 20, namespace: "inventory/device", objectid: nil, limit: 10).map(\.position) == [21])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func pruningByAgeDropsOnlyOldChanges(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            for index in 0..<3 { #expect(await harness.call(.create, data: ["name": .string("n\(index)")]).success) }
            #expect(try await harness.store.prune(ChangeRetention(maxAge: .seconds(3600))) == 0)
            #expect(try await harness.store.prune(ChangeRetention(maxAge: .seconds(-10))) == 3)
        }
    }

    /// SQLite's file reopened (PostgreSQL's database outlives its nodes by nature).
    @Test func theLogAndItsEpochSurviveAReopen() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-reopen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("flowgate.sqlite").path
        let store = try SQLiteStore(path: path)
        let harness = try CollectionHarness(store: store, methods: [.create])
        #expect(await harness.call(.create, data: ["name": "kept"]).success)
        let reopened = try SQLiteStore(path: path)
        #expect(reopened.epoch == store.epoch)
        #expect(try await reopened.bounds() == (1, 0))
        let other = try SQLiteStore(path: folder.appendingPathComponent("other.sqlite").path)
        #expect(other.epoch != store.epoch, "a new database starts a new epoch")
    }

    /// A watch's filter (FilterMatch) agrees with LIST's (the store's SQL) on every pairing of
    /// these values: the "stopped matching" event relies on it.
    @Test(arguments: StoreKind.allCases)
    func watchFiltersMatchExactlyWhatListFilters(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let values: [JSONValue] = [.null, true, false, 0, 1, 1.0, 1.5, "1", "", "a", "A"]
            var objects: [String: JSONObject] = [:]
            for (index, value) in values.enumerated() {
                let response = await harness.call(.create, data: ["id": .string("v\(index)"), "name": "n", "extra": value])
                #expect(response.success)
                objects["v\(index)"] = response.data?.objectValue
            }
            #expect(await harness.call(.create, data: ["id": "missing", "name": "n"]).success)
            objects["missing"] = await harness.call(.open, "missing").data?.objectValue
            for filter in values {
                let listed = await harness.call(.list, parameters: ["filter": ["extra": filter]])
                let ids = Set(listed.data?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
                let matched = Set(objects.filter { FilterMatch.matches($0.value, ["extra": filter]) }.keys)
                #expect(ids == matched, "filter \(filter)")
            }
        }
    }
}
