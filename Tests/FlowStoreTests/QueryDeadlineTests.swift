import FlowCore
import FlowProtocol
@testable import FlowStore
import Foundation
import GRDB
import Testing

/// SPEC §11: store queries are bounded — a scan runs off the cooperative pool and is interrupted
/// when its call is cancelled (its deadline passed), and point reads never wait behind scans.
@Suite(.timeLimit(.minutes(1)))
struct QueryDeadlineTests {
    /// A query that never ends unless SQLite interrupts it.
    static let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"

    @Test func scansAreInterruptedByCancellationAndPointReadsDoNotWaitForThem() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-deadline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteStore(path: folder.appendingPathComponent("flowgate.sqlite").path)
        let spec = CollectionSpec(name: "demo/things")
        _ = try await store.insert(spec, id: "a", fields: ["name": "a"])

        // More endless scans than there are scan connections: every one of them busy.
        let scans = (0..<6).map { _ in Task { try await store.scan { db in try Int.fetchOne(db, sql: Self.endless) } } }
        try await Task.sleep(for: .milliseconds(100))
        // A point read answers meanwhile, on a connection no scan holds.
        #expect(try await store.encodedObject(spec, id: "a") != nil)
        for scan in scans { scan.cancel() }
        for scan in scans {
            await #expect(throws: CancellationError.self) { _ = try await scan.value }
        }
        // The interrupted connections serve the next scans.
        for _ in 0..<6 { #expect(try await store.list(spec, query: ListQuery()).encodedObjects.count == 1) }
    }
}
