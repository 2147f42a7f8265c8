import FlowCore
import FlowProtocol
import FlowServer
import FlowStoreTestSupport
import FlowTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOWebSocket
import Testing
import WSCore

/// SPEC §12 with real daemons: several `flowgate` processes sharing one PostgreSQL database
/// (a schema of its own on the test server), reached the way a load balancer would reach them.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct ClusterTests {
    /// Runs `body` with `count` daemons started together on one new, empty database.
    static func withNodes(
        _ count: Int, environment: [String: String] = [:], _ body: @escaping @Sendable ([DaemonProcess]) async throws -> Void
    ) async throws {
        try await TestDatabase.with { url in
            let nodes = try await withThrowingTaskGroup(of: DaemonProcess.self) { group in
                for _ in 0..<count { group.addTask { try await Self.node(url, environment: environment) } }
                var nodes: [DaemonProcess] = []
                for try await node in group { nodes.append(node) }
                return nodes
            }
            defer { for node in nodes { node.cleanUp() } }
            try await body(nodes)
        }
    }

    /// A daemon on the store `url`, in a folder of its own.
    static func node(_ url: String, environment: [String: String] = [:], in folder: URL? = nil) async throws -> DaemonProcess {
        try await HostileInputTests.daemon(environment.merging(["FLOWGATE_STORE": url]) { $1 }, in: folder)
    }

    static let devices = "/api/inventory/inventory/device/"
    static let json: HTTPFields = [.contentType: "application/json"]

    // MARK: Writes

    @Test func aConflictBetweenTwoNodesHasExactlyOneWinner() async throws {
        try await Self.withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            let created = try await a.http(Self.devices, method: .post, headers: Self.json, body: #"{"id":"contested","name":"n","serial":"SN-1","ports":0}"#)
            var rev = try #require(try created.envelope().data?["rev"]?.stringValue)
            for round in 1...5 {
                let expected = rev
                async let throughA = a.http(Self.devices + "contested", method: .patch, headers: [.ifMatch: expected], body: #"{"ports":\#(round)}"#)
                async let throughB = b.http(Self.devices + "contested", method: .patch, headers: [.ifMatch: expected], body: #"{"ports":\#(round + 100)}"#)
                let answers = try await [throughA.envelope(), throughB.envelope()]
                let winners = answers.filter(\.success)
                #expect(winners.count == 1, "round \(round): \(answers)")
                #expect(answers.filter { $0.errorcode == .conflict }.count == 1, "round \(round): \(answers)")
                let winner = try #require(winners.first?.data)
                rev = try #require(winner["rev"]?.stringValue)
                // Both nodes read what won.
                #expect(try await a.http(Self.devices + "contested").envelope().data == winner)
                #expect(try await b.http(Self.devices + "contested").envelope().data == winner)
            }
            // An id taken through one node is taken on the other.
            let again = try await b.http(Self.devices, method: .post, headers: Self.json, body: #"{"id":"contested","name":"n","serial":"SN-2"}"#)
            #expect(try again.envelope().errorcode == .alreadyExists)
        }
    }

    // MARK: Watches

    /// Writes through A and C at once; a watch on B receives every one exactly once, in commit
    /// order (positions strictly increasing, no gap); a watch resuming on C from the middle
    /// receives exactly the rest, in the same order.
    @Test func aWatchOnOneNodeSeesEveryNodesWritesInCommitOrderAndResumesOnAnother() async throws {
        try await Self.withNodes(3) { nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            let perNode = 40
            let received = Locked<[JSONObject]>([])
            try await b.webSocket { socket in
                try await socket.send(LiveDataTests.watch([:]))
                let created = try await socket.receiveObject()
                #expect(created["success"] == true, "\(created)")
                async let throughA = LiveDataTests.write(a, prefix: "a", count: perNode)
                async let throughC = LiveDataTests.write(c, prefix: "c", count: perNode)
                let written = try await throughA + throughC
                #expect(written.count == 2 * perNode)
                received.withLock { $0 = [] }
                let events = try await socket.receiveObjects(2 * perNode)
                received.withLock { $0 = events }
            }
            let events = received.withLock { $0 }
            let ids = events.compactMap { $0["objectid"]?.stringValue }
            #expect(Set(ids).count == 2 * perNode && ids.count == 2 * perNode, "every write, once")
            let sequences = events.compactMap { $0["position"]?.stringValue.flatMap(LiveDataTests.sequence) }
            #expect(sequences.count == events.count)
            #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 + 1 }, "commit order, without gaps: \(sequences)")
            // Each writer's own writes keep its order.
            #expect(ids.filter { $0.hasPrefix("a") } == (0..<perNode).map { "a\($0)" })
            #expect(ids.filter { $0.hasPrefix("c") } == (0..<perNode).map { "c\($0)" })

            // Resume on C from the middle of what B delivered.
            let middle = try #require(events[perNode - 1]["position"]?.stringValue)
            try await c.webSocket { socket in
                try await socket.send(LiveDataTests.watch(["since": .string(middle)]))
                #expect(try await socket.receiveObject()["success"] == true)
                let rest = try await socket.receiveObjects(perNode)
                #expect(rest.compactMap { $0["objectid"]?.stringValue } == Array(ids[perNode...]))
                // Then live, with nothing repeated: the next event is a write made now, through A.
                _ = try await LiveDataTests.write(a, prefix: "late", count: 1)
                #expect(try await socket.receiveObject()["objectid"] == "late0")
            }
        }
    }

    /// `kill -9` of one node while both take writes: every write either node answered
    /// `success: true` is there afterwards, read through the survivor, and the survivor goes on.
    @Test func killingANodeUnderWriteLoadLosesNoAcknowledgedWrite() async throws {
        try await Self.withNodes(2) { nodes in
            let (victim, survivor) = (nodes[0], nodes[1])
            let start = try #require(try await survivor.http(Self.devices).envelope().paging?["position"]?.stringValue)
            let acknowledged = CollectionEndToEndTests.Acknowledged()
            let writers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for writer in 0..<16 {
                        let node = writer % 2 == 0 ? victim : survivor
                        group.addTask {
                            for index in 0..<150 {
                                let name = "w\(writer)-\(index)"
                                let body = #"{"name":"\#(name)","serial":"SN-\#(writer)x\#(index)"}"#
                                guard let response = try? await node.http(Self.devices, method: .post, headers: Self.json, body: body),
                                    let envelope = try? response.envelope(), envelope.success, let id = envelope.data?["id"]?.stringValue
                                else { return }  // the node is gone: stop
                                acknowledged.ids.withLock { $0[id] = name }
                            }
                        }
                    }
                }
            }
            // Until a few hundred are acknowledged (bounded), then the kill.
            let deadline = ContinuousClock.now + .seconds(60)
            while acknowledged.ids.withLock({ $0.count }) < 300 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            victim.signal(SIGKILL)
            await writers.value
            #expect(try await victim.waitForExit() != 0)
            let saved = acknowledged.ids.withLock { $0 }
            #expect(saved.count >= 300)
            for (id, name) in saved {
                #expect(try await survivor.http(Self.devices + id).envelope().data?["name"] == .string(name), "\(id) lost")
            }
            // The log holds them too, once each, without gaps: a watch from the start replays
            // every write (acknowledged or committed as the node died) up to a marker written now.
            let replayed = Locked<[JSONObject]>([])
            try await survivor.webSocket { socket in
                try await socket.send(LiveDataTests.watch(["since": .string(start)]))
                #expect(try await socket.receiveObject()["success"] == true)
                _ = try await LiveDataTests.write(survivor, prefix: "marker", count: 1)
                var events: [JSONObject] = []
                while events.last?["objectid"] != "marker0" && events.count <= 16 * 150 {
                    events.append(try await socket.receiveObject())
                }
                replayed.withLock { $0 = events }
            }
            let events = replayed.withLock { $0 }
            let ids = events.compactMap { $0["objectid"]?.stringValue }
            #expect(Set(saved.keys).isSubset(of: ids), "every acknowledged write is in the log")
            #expect(ids.count == Set(ids).count, "once each")
            let sequences = events.compactMap { $0["position"]?.stringValue.flatMap(LiveDataTests.sequence) }
            #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 + 1 }, "without gaps")
        }
    }

    // MARK: The database going away

    /// The database out of reach (a proxy between the daemon and PostgreSQL stops): once the
    /// daemon has noticed, calls that need the database answer PROVIDER_UNAVAILABLE at once —
    /// not TIMEOUT, not INTERNAL_ERROR — and `/readyz` says so; the socket and the daemon stay;
    /// with the database back, everything works again, watches included.
    ///
    /// A daemon of its own (a hang in its shutdown cannot hold the test process), and every step
    /// bounded by ``step(_:within:_:)``: a step that hangs fails the test and says which.
    @Test func theDatabaseGoingAwayIsProviderUnavailableUntilItIsBack() async throws {
        try await TestDatabase.with { url in
            var components = try #require(URLComponents(string: url))
            let target = try #require(components.port)
            let proxy = try await Self.step("starting the proxy") { try await TCPProxy.start(forwardingTo: target) }
            components.port = proxy.port
            let proxied = try #require(components.string)
            let node = try await Self.step("starting the node", within: .seconds(60)) {
                try await Self.node(proxied, environment: ["FLOWGATE_CALL_TIMEOUT_MS": "3000"])
            }
            defer { node.cleanUp() }
            let device = #"{"id":"d1","name":"n","serial":"SN-1"}"#
            #expect(try await Self.step("the first write") { try await node.http(Self.devices, method: .post, headers: Self.json, body: device).envelope().success })
            await Self.stepOrRecord("stopping the proxy") { await proxy.stop() }
            // Until the daemon notices, a call may wait for its timeout; then they are refused at once.
            let refused = try await Self.eventually { () -> Response? in
                let answer = try? await Self.step("a read while the database is away") { try await node.http(Self.devices + "d1").envelope() }
                return answer?.errorcode == .providerUnavailable ? answer : nil
            }
            #expect(refused.message == "The database is unavailable; try again shortly")
            #expect(try await Self.step("/readyz while the database is away") { try await node.http("/readyz").head.status } == .serviceUnavailable)
            let write = try await Self.step("a write while the database is away") {
                try await node.http(Self.devices, method: .post, headers: Self.json, body: #"{"id":"d2","name":"n","serial":"SN-2"}"#).head.status
            }
            #expect(write == .serviceUnavailable)

            // Back: on the same port, as a database that restarts is. The pool's connection
            // attempts back off (postgres-nio: 100 ms growing by a quarter each, at most a
            // minute), so the return can take a while after an outage on a loaded machine.
            let back = try await Self.step("starting the proxy again") { try await TCPProxy.start(forwardingTo: target, port: proxy.port) }
            defer { Task { await back.stop() } }
            let reopened = try await Self.eventually(within: .seconds(90)) { () -> Response? in
                let answer = try? await Self.step("a read after the database is back") { try await node.http(Self.devices + "d1").envelope() }
                return answer?.success == true ? answer : nil
            }
            #expect(reopened.data?["id"] == "d1")
            // Watches work again: a write made now reaches a watch made now.
            try await Self.step("a watch after the database is back", within: .seconds(60)) {
                try await node.webSocket { socket in
                    try await socket.send(LiveDataTests.watch([:]))
                    #expect(try await socket.receiveObject()["success"] == true)
                    #expect(try await node.http(Self.devices, method: .post, headers: Self.json, body: #"{"id":"d3","name":"n","serial":"SN-3"}"#).envelope().success)
                    #expect(try await socket.receiveObject()["objectid"] == "d3")
                }
            }
        }
    }

    /// `work`'s result; past `limit` (stretched by ``TestTime``) the step fails, naming itself,
    /// and `work` is cancelled and left behind rather than waited for.
    static func step<T: Sendable>(
        _ name: String, within limit: Duration = .seconds(20), _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let once = Once()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let task = Task {
                do {
                    let value = try await work()
                    if once.claim() { continuation.resume(returning: value) }
                } catch {
                    if once.claim() { continuation.resume(throwing: error) }
                }
            }
            Task {
                try? await Task.sleep(for: TestTime.bound(limit))
                if once.claim() {
                    task.cancel()
                    continuation.resume(throwing: StepTimedOut(step: name, limit: limit))
                }
            }
        }
    }

    /// ``step(_:within:_:)`` for a step that cannot fail but may hang: a hang is recorded.
    static func stepOrRecord(_ name: String, within limit: Duration = .seconds(20), _ work: @escaping @Sendable () async -> Void) async {
        do { try await Self.step(name, within: limit, work) } catch { Issue.record(error) }
    }

    /// True for the first caller only.
    final class Once: Sendable {
        private let taken = Locked(false)
        func claim() -> Bool { self.taken.withLock { taken in defer { taken = true }; return !taken } }
    }

    struct StepTimedOut: Error, CustomStringConvertible {
        let step: String
        let limit: Duration
        var description: String { "\(self.step) did not finish within \(self.limit)" }
    }

    /// PostgreSQL is backed up with its own tools: `system/backup` is not served on it, and the
    /// `backup`/`restore` commands say what to use instead; `user` and `token` work on it.
    @Test func backupIsLeftToPostgreSQLsToolsAndAccountsCommandsUseTheStore() async throws {
        try await TestDatabase.with { url in
            let node = try await Self.node(url)
            defer { node.cleanUp() }
            let snapshot = try await node.http("/api/system/system/backup/snapshot", method: .post, headers: BackupTests.run, body: "{}")
            #expect(try snapshot.envelope().errorcode == .noSuchEndpoint)
            let (backup, _, refusal) = try await CommandLineAuthTests.flowgate(["backup", "snapshot.sqlite", "--store", url], in: node.folder)
            #expect(backup != 0 && refusal.contains("back it up and restore it with pg_dump and pg_restore"), "\(refusal)")
            // A token made by the command works on the running node at once.
            let (created, token, log) = try await CommandLineAuthTests.flowgate(["token", "create", "admin", "--store", url], in: node.folder)
            #expect(created == 0, "\(log)")
            let value = token.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await node.http(Self.devices, headers: AuthEndToEndTests.bearer(value)).head.status == .ok)
        }
    }

    // MARK: Auth

    /// A token revoked through A: B refuses it and closes the socket opened with it, 4001. SPEC's
    /// second is the design (each node reads the auth version every 250 ms); the bound leaves a
    /// loaded machine another second.
    @Test func aRevocationOnOneNodeClosesTheSocketOnAnother() async throws {
        try await Self.withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            let created = try await a.http("/api/auth/auth/tokens/", method: .post, headers: Self.json, body: #"{"name":"cluster"}"#).envelope()
            let token = try #require(created.data?["token"]?.stringValue)
            let id = try #require(created.data?["id"]?.stringValue)
            let elapsed = Locked<Duration?>(nil)
            let close = try await b.webSocket("/ws/inventory/device", headers: [.flowAuthToken: token]) { socket in
                try await socket.send(#"{"method":"LIST"}"#)
                #expect(try await socket.receive().success)
                let revoked = try await a.http("/api/auth/auth/tokens/\(id)", method: .delete)
                #expect(try revoked.envelope().success)
                let start = ContinuousClock.now
                try await socket.expectClosedByServer(within: .seconds(5))
                elapsed.withLock { $0 = ContinuousClock.now - start }
            }
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4001))
            let took = try #require(elapsed.withLock { $0 })
            #expect(took < TestTime.bound(.seconds(2)), "\(took)")
            #expect(try await b.http(Self.devices, headers: AuthEndToEndTests.bearer(token)).head.status == .unauthorized)
        }
    }

    /// A user and a role made through one node work on the other at once after; a password
    /// changed through the other ends the first node's sessions.
    @Test func usersRolesAndPasswordsAreSharedByEveryNode() async throws {
        try await Self.withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            let role = try await a.http("/api/auth/auth/roles/", method: .post, headers: Self.json, body: #"{"name":"viewer","scopes":["inventory/*:LIST"]}"#)
            #expect(try role.envelope().success, "\(role.bodyText)")
            let user = try await a.http("/api/auth/auth/users/", method: .post, headers: Self.json, body: #"{"username":"vera","password":"vera-password","roles":["viewer"]}"#)
            #expect(try user.envelope().success, "\(user.bodyText)")
            // Through B at once: the store is the truth, not a node's copy.
            let session = try await Self.eventually { try? await AuthEndToEndTests.login(b, "vera", "vera-password") }
            #expect(try await b.http(Self.devices, headers: AuthEndToEndTests.bearer(session)).head.status == .ok)
            #expect(try await a.http(Self.devices, headers: AuthEndToEndTests.bearer(session)).head.status == .ok)
            #expect(try await a.http(Self.devices, method: .post, headers: AuthEndToEndTests.bearer(session), body: #"{"name":"x","serial":"SN-9"}"#).head.status == .forbidden)
            // The admin sets vera's password through B; her session ends on A too.
            let changed = try await b.http("/api/auth/auth/users/vera", method: .patch, headers: Self.json, body: #"{"password":"vera-new-password"}"#)
            #expect(try changed.envelope().success, "\(changed.bodyText)")
            let refused = try await Self.eventually {
                try? await a.http(Self.devices, headers: AuthEndToEndTests.bearer(session)).head.status == .unauthorized ? true : nil
            }
            #expect(refused)
        }
    }

    /// The failed-login limit is each node's own (Decisions: a shared one would write to the
    /// database on every failure): the node that counted the failures refuses, another does not.
    @Test func theFailedLoginLimitIsPerNode() async throws {
        try await Self.withNodes(2, environment: ["FLOWGATE_LOGIN_FAILURES_PER_MINUTE": "3"]) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            let wrong = #"{"username":"admin","password":"not-the-password"}"#
            var codes: [ErrorCode?] = []
            for _ in 0..<4 {
                codes.append(try await a.http("/api/auth/auth/session", method: .post, headers: AuthEndToEndTests.anonymous, body: wrong).envelope().errorcode)
            }
            #expect(codes == [.unauthenticated, .unauthenticated, .unauthenticated, .rateLimited], "\(codes)")
            _ = try await AuthEndToEndTests.login(b, "admin", LiveGateway.adminPassword)
        }
    }

    /// Polls `attempt` until it gives a value (a node sees another's change within a second by
    /// design; this gives a loaded machine several).
    static func eventually<T>(within limit: Duration = .seconds(15), _ attempt: () async -> T?) async throws -> T {
        let deadline = ContinuousClock.now + TestTime.bound(limit)
        while ContinuousClock.now < deadline {
            if let value = await attempt() { return value }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TimedOut()
    }

    struct TimedOut: Error {}
}
