import FlowCore
import FlowProtocol
@testable import FlowStore
import Foundation
import MetricsTestKit
import Testing

/// Group commit: writes that arrive together share a transaction, each answered with its own
/// outcome; a failed one leaves nothing behind; the change feed sees the committed ones once,
/// in position order.
@Suite struct GroupCommitTests {
    static let spec = CollectionSpec(name: "g/c", searchFields: ["name"])

    /// Groups committed and writes answered, as `flowgate_store_commits_total` and the count of
    /// `flowgate_store_write_duration_seconds` record them.
    static func counts(_ metrics: TestMetrics) throws -> (groups: Int64, writes: Int) {
        (try metrics.expectCounter(GatewayMetrics.Name.storeCommits).totalValue, try metrics.expectTimer(GatewayMetrics.Name.storeWriteDuration).values.count)
    }

    @Test func concurrentWritesShareCommitsAndKeepTheirOwnOutcomes() async throws {
        let metrics = TestMetrics()
        let store = try DeclaredIndexTests.Store(metrics: GatewayMetrics(factory: metrics))
        defer { store.cleanUp() }
        let delivered = Locked<[Change]>([])
        store.store.onCommit { change in delivered.withLock { $0.append(change) } }
        // 200 inserts at once, every fifth id taken twice: one of each pair wins.
        let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
            for index in 0..<200 {
                group.addTask {
                    let id = index % 5 == 0 ? "dup\(index / 10)" : "o\(index)"
                    do {
                        _ = try await store.store.insert(Self.spec, id: id, fields: ["name": .string("n\(index)")])
                        return (id, true)
                    } catch let error as FlowError {
                        #expect(error.code == .alreadyExists)
                        return (id, false)
                    } catch {
                        Issue.record("unexpected \(error)")
                        return (id, false)
                    }
                }
            }
            return await group.reduce(into: [(String, Bool)]()) { $0.append($1) }
        }
        let created = outcomes.filter(\.1).map(\.0)
        #expect(Set(created).count == created.count, "each id created once")
        #expect(Set(created) == Set(outcomes.map(\.0)), "every id created by one of its writers")
        let (groups, writes) = try Self.counts(metrics)
        #expect(writes == 200)
        #expect(groups < Int64(writes), "writes that arrived together shared commits (\(groups) groups)")

        // Stale revs in the same groups as good ones: the conflicts change nothing.
        let current = try await store.store.list(Self.spec, query: ListQuery(limit: 1000))
        #expect(current.total == created.count)
        let updates = await withTaskGroup(of: Bool.self) { group in
            for id in created.prefix(60) {
                group.addTask {
                    let stale = (try? await store.store.replace(Self.spec, id: id, expectedRev: "stale", fields: ["name": "bad"])) != nil
                    let object = try? decodeStoredObject(try await store.store.encodedObject(Self.spec, id: id) ?? "")
                    let rev = object?["rev"]?.stringValue ?? ""
                    let good = (try? await store.store.replace(Self.spec, id: id, expectedRev: rev, fields: ["name": "good"])) != nil
                    return !stale && good
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(updates.allSatisfy { $0 })
        for id in created.prefix(60) {
            #expect(try decodeStoredObject(try await store.store.encodedObject(Self.spec, id: id) ?? "")["name"] == "good")
        }
        let changes = delivered.withLock { $0 }
        #expect(changes.count == created.count + 60, "one change per committed write, none for the refused ones")
        #expect(changes.map(\.position) == changes.map(\.position).sorted(), "in position order")
        #expect(Set(changes.map(\.position)).count == changes.count)
        let logged = try await store.store.changes(after: 0, limit: 1000)
        #expect(logged.map(\.position) == changes.map(\.position))
    }

    /// A lone writer commits alone: it does not wait for others to join.
    @Test func writesOneAfterAnotherCommitOneByOne() async throws {
        let metrics = TestMetrics()
        let store = try DeclaredIndexTests.Store(metrics: GatewayMetrics(factory: metrics))
        defer { store.cleanUp() }
        for index in 0..<20 { _ = try await store.store.insert(Self.spec, id: "s\(index)", fields: [:]) }
        let (groups, writes) = try Self.counts(metrics)
        #expect(groups == 20 && writes == 20)
    }
}
