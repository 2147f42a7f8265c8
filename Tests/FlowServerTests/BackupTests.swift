import FlowProtocol
import FlowServer
import FlowStore
import FlowTestSupport
import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// Backup and restore, online (SPEC §10): `RUN system/backup snapshot|restore` over HTTP on the
/// gateway `flowgate serve` builds, and `flowgate backup|restore` on the real binary.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct BackupTests {
    static let run: HTTPFields = [.flowRequestMethod: "RUN", .contentType: "application/json"]
    static let upload: HTTPFields = [.flowRequestMethod: "RUN", .contentType: "application/octet-stream"]
    static let devices = "/api/inventory/inventory/device/"

    /// The snapshot's bytes, as `RUN system/backup snapshot` answers them.
    static func snapshot(_ live: some LoopbackClient) async throws -> [UInt8] {
        let response = try await live.http("/api/system/system/backup/snapshot", method: .post, headers: Self.run, body: "{}")
        try #require(response.head.status == .ok, "\(response.bodyText)")
        #expect(response.head.headerFields[.contentType] == "application/octet-stream")
        return Array(try #require(response.body).readableBytesView)
    }

    static func restore(_ live: some LoopbackClient, _ bytes: [UInt8], headers: HTTPFields = [:]) async throws -> TestClient.Response {
        var all = Self.upload
        all.append(contentsOf: headers)
        return try await live.http("/api/system/system/backup/restore", method: .post, headers: all, bytes: bytes)
    }

    static func createDevice(_ live: some LoopbackClient, _ name: String) async throws -> String {
        let envelope = try await live.http(Self.devices, method: .post, headers: [.contentType: "application/json"], body: #"{"name":"\#(name)","serial":"SN-\#(name)"}"#)
            .envelope()
        return try #require(envelope.data?["id"]?.stringValue, "\(envelope)")
    }

    static func deviceCount(_ live: some LoopbackClient) async throws -> Int {
        let listed = try await live.http(Self.devices + "?parameters=" + #"{"limit":1}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!).envelope()
        guard case .integer(let total)? = listed.paging?["total"] else { throw FlowError(.internalError, "no total: \(listed)") }
        return Int(total)
    }

    static func write(_ bytes: [UInt8]) throws -> URL {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-snapshot-\(UUID().uuidString).sqlite")
        try Data(bytes).write(to: file)
        return file
    }

    /// What a writer task and the test share.
    final class WriteStream: Sendable {
        let acknowledged = Locked<[String]>([])
        let stop = Locked(false)
    }

    @Test func aSnapshotTakenDuringWritesIsIntactHoldsEveryEarlierWriteAndRestoresElsewhere() async throws {
        let stream = WriteStream()
        var before: Set<String> = []
        var bytes: [UInt8] = []
        try await LiveGateway.runShipped { live in
            try await withThrowingTaskGroup(of: Void.self) { group in
                // A stream of acknowledged writes over a WebSocket, bounded in count.
                group.addTask {
                    try await live.webSocket("/ws") { socket in
                        for index in 0..<3_000 where !stream.stop.withLock({ $0 }) {
                            try await socket.send(#"{"method":"CREATE","namespace":"inventory/device","data":{"name":"w\#(index)","serial":"SN-w\#(index)"}}"#)
                            let answer = try await socket.receive()
                            guard let id = answer.data?["id"]?.stringValue else { throw FlowError(.internalError, "write failed: \(answer)") }
                            stream.acknowledged.withLock { $0.append(id) }
                            // Paced, so the suites running beside this one keep some CPU.
                            try await Task.sleep(for: .milliseconds(2))
                        }
                    }
                }
                while stream.acknowledged.withLock({ $0.count }) < 100 { try await Task.sleep(for: .milliseconds(5)) }
                before = Set(stream.acknowledged.withLock { $0 })
                bytes = try await Self.snapshot(live)
                stream.stop.withLock { $0 = true }
                try await group.waitForAll()
            }
            #expect(stream.acknowledged.withLock { $0.count } > before.count, "writes went on around the snapshot")
        }
        let file = try Self.write(bytes)
        defer { try? FileManager.default.removeItem(at: file) }
        // Opens cleanly, intact, and holds every write acknowledged before the snapshot was asked for.
        let queue = try DatabaseQueue(path: file.path)
        let (integrity, stored) = try await queue.read { db in
            (try String.fetchAll(db, sql: "PRAGMA integrity_check"), Set(try String.fetchAll(db, sql: "SELECT id FROM object WHERE collection = 'inventory/device'")))
        }
        try queue.close()
        #expect(integrity == ["ok"])
        #expect(before.isSubset(of: stored), "\(before.subtracting(stored).count) acknowledged writes missing")
        #expect(try SQLiteStore.checkSnapshot(at: file.path).objects == stored.count)

        // A daemon restored from it serves them.
        try await LiveGateway.runShipped { other in
            let restored = try await Self.restore(other, bytes)
            #expect(try restored.envelope().data?["objects"] == .integer(Int64(stored.count)), "\(restored.bodyText)")
            #expect(try await Self.deviceCount(other) == stored.count)
            for id in before.prefix(20) {
                #expect(try await other.http(Self.devices + id).envelope().success)
            }
        }
    }

    @Test func aRestoreBringsBackDataUsersAndTokensAndEndsWatchesWithoutARestart() async throws {
        try await LiveGateway.runShipped { live in
            let kept = try await Self.createDevice(live, "kept")
            let bob = try await live.http(
                "/api/auth/auth/users/", method: .post, headers: [.contentType: "application/json"],
                body: #"{"username":"bob","password":"bob-password","roles":["reader"]}"#
            )
            #expect(try bob.envelope().success)
            let listed = try await live.http(Self.devices).envelope()
            let oldPosition = try #require(listed.paging?["position"]?.stringValue)
            let bytes = try await Self.snapshot(live)

            // After the snapshot: bob goes, a device comes.
            #expect(try await live.http("/api/auth/auth/users/bob", method: .delete).envelope().success)
            let later = try await Self.createDevice(live, "later")
            let bobHeaders = AuthEndToEndTests.basic("bob", "bob-password")
            #expect(try await live.http(Self.devices, headers: bobHeaders).head.status == .unauthorized)

            let ended = try await live.webSocket("/ws") { socket in
                try await socket.send(LiveDataTests.watch([:]))
                #expect(try await socket.receiveObject()["success"] == true)
                let restored = try await Self.restore(live, bytes)
                let result = try restored.envelope()
                #expect(result.success, "\(restored.bodyText)")
                #expect(result.data?["users"] == .integer(2))
                let previous = try #require(result.data?["previous"]?.stringValue)
                let data = live.gateway.configuration.dataDirectory
                #expect(FileManager.default.fileExists(atPath: (data as NSString).appendingPathComponent(previous)))
                // The watch ends: its positions belong to the database that was replaced.
                let event = try await socket.receiveObject()
                #expect(event["event"] == "ended" && event["reason"] == "restored", "\(event)")
            }
            _ = ended
            // The restored objects, users and tokens are in force at once.
            #expect(try await live.http(Self.devices + kept).envelope().success)
            #expect(try await live.http(Self.devices + later).envelope().errorcode == .doNotExist)
            #expect(try await live.http(Self.devices, headers: bobHeaders).head.status == .ok)
            // Positions from before the restore are of another epoch.
            try await live.webSocket("/ws") { socket in
                try await socket.send(LiveDataTests.watch(["since": .string(oldPosition)]))
                #expect(try await socket.receive().errorcode == .cursorExpired)
            }
            let relisted = try await live.http(Self.devices).envelope()
            #expect(relisted.paging?["position"]?.stringValue?.split(separator: ".").first != oldPosition.split(separator: ".").first)
        }
    }

    @Test func aDamagedOrForeignSnapshotIsRefusedAndNothingChanges() async throws {
        try await LiveGateway.runShipped { live in
            _ = try await Self.createDevice(live, "stays")
            let good = try await Self.snapshot(live)
            let foreign = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-foreign-\(UUID().uuidString).sqlite")
            defer { try? FileManager.default.removeItem(at: foreign) }
            let queue = try DatabaseQueue(path: foreign.path)
            try await queue.write { db in try db.execute(sql: "CREATE TABLE t (x); INSERT INTO t VALUES (1)") }
            try queue.close()
            var damaged = good
            for index in stride(from: 4096, to: damaged.count, by: 97) { damaged[index] ^= 0x5A }
            // A snapshot from a newer flowgate: one migration this one does not know.
            let newerFile = try Self.write(good)
            defer { try? FileManager.default.removeItem(at: newerFile) }
            let newerQueue = try DatabaseQueue(path: newerFile.path)
            try await newerQueue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from the future')") }
            try newerQueue.close()
            let cases: [(String, [UInt8], String)] = [
                ("random bytes", (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }, "SQLite"),
                ("a foreign SQLite database", Array(try Data(contentsOf: foreign)), "not a flowgate one"),
                ("a truncated snapshot", Array(good.prefix(good.count / 2)), "snapshot"),
                ("a damaged snapshot", damaged, "snapshot"),
                ("nothing", [], "not a flowgate one"),
                ("a newer flowgate's snapshot", Array(try Data(contentsOf: newerFile)), "newer flowgate"),
            ]
            for (name, bytes, words) in cases {
                let refused = try await Self.restore(live, bytes)
                let envelope = try refused.envelope()
                #expect(refused.head.status == .badRequest, "\(name): \(refused.bodyText)")
                #expect(envelope.errorcode == .invalidRequest, "\(name)")
                #expect(envelope.message?.contains(words) == true, "\(name): \(envelope.message ?? "")")
            }
            #expect(try await Self.deviceCount(live) == 1)
            let data = live.gateway.configuration.dataDirectory
            let files = try FileManager.default.contentsOfDirectory(atPath: data)
            #expect(!files.contains { $0.contains("before-restore") }, "nothing was replaced: \(files)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: data + "/tmp").isEmpty, "uploads are deleted")

            // A JSON body is no snapshot; a reader may not; WebSocket carries no files.
            #expect(try await live.http("/api/system/system/backup/restore", method: .post, headers: Self.run, body: "{}").envelope().errorcode == .dataRequired)
            _ = try await live.http(
                "/api/auth/auth/users/", method: .post, headers: [.contentType: "application/json"],
                body: #"{"username":"rita","password":"rita-password","roles":["reader"]}"#
            )
            let rita: HTTPFields = [.authorization: "Basic " + Data("rita:rita-password".utf8).base64EncodedString()]
            let forbidden = try await Self.restore(live, good, headers: rita)
            #expect(forbidden.head.status == .forbidden, "\(forbidden.bodyText)")
            #expect(try await live.http("/api/system/system/backup/snapshot", method: .post, headers: AuthEndToEndTests.basic("rita", "rita-password").adding(.flowRequestMethod, "RUN"), body: "{}").head.status == .forbidden)
            // Nobody is known before a byte of the body is read.
            let anonymous = try await Self.restore(live, good, headers: [.anonymous: "1"])
            #expect(anonymous.head.status == .unauthorized)
            #expect(try anonymous.envelope().errorcode == .unauthenticated)
            // Files travel over HTTP only: the mirror of the WebSocket-only methods.
            try await live.webSocket("/ws") { socket in
                try await socket.send(#"{"method":"RUN","namespace":"system/backup","objectid":"snapshot","data":{}}"#)
                #expect(try await socket.receive().errorcode == .methodNotAllowed)
            }
            // A snapshot takes no file; only snapshot and restore exist; data must be an object.
            let fileToSnapshot = try await live.http("/api/system/system/backup/snapshot", method: .post, headers: Self.upload, bytes: good)
            #expect(try fileToSnapshot.envelope().errorcode == .invalidRequest)
            #expect(try await live.http("/api/system/system/backup/other", method: .post, headers: Self.run, body: "{}").envelope().errorcode == .doNotExist)
            #expect(try await live.http("/api/system/system/backup/snapshot", method: .post, headers: Self.run, body: "[]").envelope().errorcode == .validationFailed)
            // A file body to an endpoint that takes JSON is refused before it is read.
            let misplaced = try await live.http(Self.devices, method: .post, headers: [.contentType: "application/octet-stream"], bytes: good)
            #expect(try misplaced.envelope().errorcode == .invalidRequest)
        }
    }

    @Test func aSnapshotLargerThanTheLimitIsRefusedBeforeItIsStored() async throws {
        try await LiveGateway.runShipped(configure: { $0.maxSnapshotBytes = 8_192 }) { live in
            let good = try await Self.snapshot(live)
            #expect(good.count > 8_192)
            // Said by Content-Length: refused before the body is read.
            let declared = try await Self.restore(live, good)
            #expect(declared.head.status == .contentTooLarge)
            #expect(try declared.envelope().errorcode == .payloadTooLarge)
            let data = live.gateway.configuration.dataDirectory
            #expect((try? FileManager.default.contentsOfDirectory(atPath: data + "/tmp").isEmpty) ?? true, "nothing is kept")
            #expect(try FileManager.default.contentsOfDirectory(atPath: data).allSatisfy { !$0.contains("before-restore") })
        }
    }

    @Test func theCommandLineBacksUpARunningDaemonAndRestoresAStoppedOne() async throws {
        let repository = LiveGateway.repository
        let arguments = ["--endpoints", repository.appendingPathComponent("Endpoints").path, "--schemas", repository.appendingPathComponent("Schemas").path]
        let daemon = try await DaemonProcess.start(arguments)
        let folder = daemon.folder
        defer { try? FileManager.default.removeItem(at: folder) }
        let kept = try await Self.createDevice(daemon, "kept")
        let (backedUp, out, err) = try await CommandLineAuthTests.flowgate(["backup", "snap.sqlite"], in: folder)
        #expect(backedUp == 0, "\(err)")
        #expect(out.contains("1 objects"), "\(out)")
        let later = try await Self.createDevice(daemon, "later")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        daemon.cleanUp(keepFolder: true)

        // A bad file changes nothing and says why.
        try Data("not a database".utf8).write(to: folder.appendingPathComponent("junk.sqlite"))
        let (refused, _, refusal) = try await CommandLineAuthTests.flowgate(["restore", "junk.sqlite"], in: folder)
        #expect(refused != 0)
        #expect(refusal.contains("error: The snapshot"), "\(refusal)")

        let (restored, summary, restoreErr) = try await CommandLineAuthTests.flowgate(["restore", "snap.sqlite"], in: folder)
        #expect(restored == 0, "\(restoreErr)")
        #expect(summary.contains("restored 1 objects"), "\(summary)")
        let data = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("data").path)
        #expect(data.contains { $0.hasPrefix("flowgate.sqlite.before-restore-") }, "\(data)")

        let again = try await DaemonProcess.start(arguments, in: folder)
        defer { again.cleanUp(keepFolder: true) }
        #expect(try await again.http(Self.devices + kept).envelope().success)
        #expect(try await again.http(Self.devices + later).envelope().errorcode == .doNotExist)
    }
}
