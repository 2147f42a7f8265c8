import FlowAuth
import FlowClient
import FlowCore
import FlowProtocol
import FlowServer
import FlowStoreTestSupport
import FlowTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// SPEC §12's provider routing with real daemons on one database: a provider connected to one
/// node serves callers of every node, over both transports, until its node dies or hangs.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct ClusterRoutingTests {
    static let secret = "a-cluster-secret-for-the-tests"
    static let cluster = ["FLOWGATE_CLUSTER_SECRET": Self.secret]
    static let remote = Namespace("demo/remote")!
    static let path = "/api/demo/demo/remote/"

    /// A provider client of `node`, signed in as the admin (who may provide anything).
    static func provider(_ node: DaemonProcess) -> FlowClient {
        FlowClient(
            configuration: .init(url: "ws://127.0.0.1:\(node.port)/ws", credential: .basic(username: "admin", password: LiveGateway.adminPassword)),
            logger: FlowClientTests.debugLogger
        )
    }

    /// Serves `demo/remote` on `client`: OPEN answers who called and through what, `slow` never
    /// answers (it reports that it started), `missing` is DO_NOT_EXIST; LIST answers with paging.
    static func serve(_ client: FlowClient, started: Started) async throws {
        let endpoint = ProvidedEndpoint(namespace: Self.remote, title: "Remote", methods: [.list, .open], concurrency: 8, timeout: .seconds(60))
        _ = try await client.provide(endpoint, answering: { call in
            switch (call.method, call.objectid) {
            case (.list, _):
                return Response(success: true, data: ["one", "two"], paging: ["total": 2])
            case (_, "slow"?):
                started.count.withLock { $0 += 1 }
                try await Task.sleep(for: .seconds(600))
                return Response(success: true)
            case (_, "missing"?):
                throw FlowError(.doNotExist, "No remote thing called missing")
            default:
                return Response(success: true, data: ["objectid": .string(call.objectid ?? ""), "user": .string(call.user ?? ""), "scopes": .array(call.scopes.map(JSONValue.string))])
            }
        })
    }

    /// How many `slow` calls reached the provider.
    final class Started: Sendable {
        let count = Locked(0)
    }

    /// The node id `node` logged at start.
    static func nodeID(_ node: DaemonProcess) throws -> String {
        let match = try #require(node.log.firstMatch(of: /flow\.node=([0-9a-f-]{36})/))
        return String(match.1)
    }

    /// A call on A and on C reaches the provider connected to B — over HTTP and WebSocket, with
    /// the caller's identity and never a token, failures and LIST paging relayed as they are —
    /// and every node lists the namespace and the link's registration.
    @Test func aCallerOnAnyNodeReachesAProviderConnectedToAnother() async throws {
        try await ClusterTests.withNodes(3, environment: Self.cluster) { nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            let client = Self.provider(b)
            try await FlowClientTests.running(client) {
                try await Self.serve(client, started: Started())
                for node in [a, c] {
                    let opened = try await ClusterTests.eventually { () -> Response? in
                        guard let answer = try? await node.http(Self.path + "thing").envelope(), answer.success else { return nil }
                        return answer
                    }
                    #expect(opened.data?["objectid"] == "thing" && opened.data?["user"] == "admin", "\(opened)")
                    #expect(opened.data?["scopes"]?.arrayValue?.contains("provide:*") == true)
                    let missing = try await node.http(Self.path + "missing").envelope()
                    #expect(missing.errorcode == .doNotExist && missing.message == "No remote thing called missing", "\(missing)")
                    let listed = try await node.http(Self.path).envelope()
                    #expect(listed.data == ["one", "two"] && listed.paging?["total"] == 2, "\(listed)")
                    // Over WebSocket too.
                    try await node.webSocket { socket in
                        try await socket.send(#"{"method":"OPEN","namespace":"demo/remote","objectid":"ws","requestid":"r1"}"#)
                        let answer = try await socket.receive()
                        #expect(answer.success && answer.data?["objectid"] == "ws" && answer.requestid?.description == "r1", "\(answer)")
                    }
                    // The cluster's providers are shown on every node.
                    let endpoints = try await node.http("/api/system/system/endpoints/").envelope()
                    #expect(endpoints.data?.arrayValue?.contains { $0["namespace"] == "demo/remote" } == true)
                    let registrations = try await node.http("/api/system/system/providers/").envelope()
                    let users = registrations.data?.arrayValue?.compactMap { $0["user"]?.stringValue } ?? []
                    #expect(users == ["node:" + (try Self.nodeID(b))], "\(users)")
                }
                // The provider's own node serves it directly: one registration, the provider's.
                let own = try await b.http("/api/system/system/providers/").envelope()
                #expect(own.data?.arrayValue?.compactMap { $0["user"]?.stringValue } == ["admin"], "\(own)")
            }
        }
    }

    /// Two nodes, a provider connected to B, and a `slow` call made through A that the provider
    /// has received and will never answer; `body` gets A, B and the pending call.
    static func withPendingCall(_ body: @escaping @Sendable (DaemonProcess, DaemonProcess, Task<Response, any Error>) async throws -> Void) async throws {
        try await ClusterTests.withNodes(2, environment: Self.cluster) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            let client = Self.provider(b)
            let started = Started()
            try await FlowClientTests.running(client) {
                try await Self.serve(client, started: started)
                _ = try await ClusterTests.eventually { try? await a.http(Self.path + "ready").envelope().success == true ? true : nil }
                let pending = Task { try await a.http(Self.path + "slow").envelope() }
                defer { pending.cancel() }
                _ = try await ClusterTests.eventually { started.count.withLock { $0 } == 1 ? true : nil }
                try await body(a, b, pending)
            }
        }
    }

    /// `kill -9` of the provider's node: a call pending through another node answers
    /// PROVIDER_UNAVAILABLE as soon as the link's socket is reset, and so do calls made after.
    @Test func killingTheProvidersNodeAnswersPendingCallsProviderUnavailable() async throws {
        try await Self.withPendingCall { a, b, pending in
            b.signal(SIGKILL)
            let killed = ContinuousClock.now
            let answer = try await pending.value
            let took = ContinuousClock.now - killed
            #expect(answer.errorcode == .providerUnavailable, "\(answer)")
            // Documented: at once when the socket is reset; at worst after a missed heartbeat window.
            #expect(took < TestTime.bound(.seconds(7)), "\(took)")
            #expect(try await a.http(Self.path + "after").envelope().errorcode == .providerUnavailable)
            #expect(try await b.waitForExit() != 0)
        }
    }

    /// An idempotent call pending through another node is tried once more on the namespace's
    /// provider on a third node when the first goes away mid-call: its whole node killed, or
    /// only the provider (its node then answers PROVIDER_UNAVAILABLE, which counts the same).
    @Test(arguments: ["the node", "the provider"])
    func anIdempotentCallIsRetriedOnAnotherNodesProvider(whatGoes: String) async throws {
        try await ClusterTests.withNodes(3, environment: Self.cluster) { nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            let onB = Self.provider(b)
            let onC = Self.provider(c)
            let started = Started()
            let runningOnB = Task { try await onB.run() }
            defer { runningOnB.cancel() }
            try await FlowClientTests.running(onC) {
                try await Self.serve(onB, started: started)
                // B's link registers on A first, so A's first choice for the call is B.
                try await Self.waitForRegistrations(1, on: a)
                let endpoint = ProvidedEndpoint(namespace: Self.remote, title: "Remote", methods: [.list, .open], concurrency: 8, timeout: .seconds(60))
                _ = try await onC.provide(endpoint) { call in ["objectid": .string(call.objectid ?? ""), "served": "c"] }
                try await Self.waitForRegistrations(2, on: a)
                let pending = Task { try await a.http(Self.path + "slow").envelope() }
                _ = try await ClusterTests.eventually { started.count.withLock { $0 } == 1 ? true : nil }
                if whatGoes == "the node" {
                    b.signal(SIGKILL)
                    #expect(try await b.waitForExit() != 0)
                } else {
                    runningOnB.cancel()
                }
                let answer = try await pending.value
                #expect(answer.success && answer.data?["served"] == "c" && answer.data?["objectid"] == "slow", "\(answer)")
            }
        }
    }

    /// Waits until `node` lists `count` provider registrations.
    static func waitForRegistrations(_ count: Int, on node: DaemonProcess) async throws {
        _ = try await ClusterTests.eventually { () -> Bool? in
            let listed = try? await node.http("/api/system/system/providers/").envelope()
            return listed?.data?.arrayValue?.count == count ? true : nil
        }
    }

    /// A node that hangs (SIGSTOP: its sockets stay open, it stops heartbeating) is dropped from
    /// routing after the heartbeat window: the pending call answers PROVIDER_UNAVAILABLE. Once
    /// it runs again, its providers are reachable again.
    @Test func aHungNodeIsDroppedFromRoutingAndComesBack() async throws {
        try await Self.withPendingCall { a, b, pending in
            b.signal(SIGSTOP)
            let answer = try await pending.value
            b.signal(SIGCONT)
            #expect(answer.errorcode == .providerUnavailable, "\(answer)")
            let back = try await ClusterTests.eventually { () -> Response? in
                guard let answer = try? await a.http(Self.path + "again").envelope(), answer.success else { return nil }
                return answer
            }
            #expect(back.data?["objectid"] == "again")
        }
    }

    /// A provider's `publish` events reach the watchers of every node, in the order published.
    @Test func aProvidersEventsReachWatchersOnOtherNodes() async throws {
        try await ClusterTests.withNodes(2, environment: Self.cluster) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            let client = Self.provider(b)
            try await FlowClientTests.running(client) {
                try await Self.serve(client, started: Started())
                try await Self.waitForRegistrations(1, on: a)
                try await a.webSocket { watcher in
                    try await watcher.send(LiveDataTests.watch(["namespace": "demo/remote"]))
                    #expect(try await watcher.receiveObject()["success"] == true)
                    for index in 0..<3 {
                        #expect(await client.publish(Self.remote, objectid: "job\(index)", event: "updated", data: ["step": .integer(Int64(index))]))
                    }
                    let events = try await watcher.receiveObjects(3)
                    #expect(events.map { $0["objectid"]?.stringValue } == ["job0", "job1", "job2"], "\(events)")
                    #expect(events.map { $0["event"] } == ["updated", "updated", "updated"])
                    #expect(events.last?["data"]?["step"] == 2)
                }
            }
        }
    }

    /// A node credential is made with the cluster's secret, names a node alive in the
    /// directory, and allows registering providers and nothing else.
    @Test func nodeCredentialsNeedTheSecretALiveNodeAndOnlyRegisterProviders() async throws {
        try await ClusterTests.withNodes(2, environment: Self.cluster) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            let registration = #"{"method":"CREATE","namespace":"system/providers","data":{"namespace":"demo/intruder","methods":["OPEN"]}}"#
            let forged = NodeCredentials(secret: "not-the-cluster-secret").token(for: try Self.nodeID(b))
            let dead = NodeCredentials(secret: Self.secret).token(for: UUID().uuidString.lowercased())
            for (token, message) in [(forged, "Invalid node credential"), (dead, "That node is not alive in the node directory")] {
                try await a.webSocket(headers: [.authorization: "Bearer " + token]) { socket in
                    try await socket.send(registration)
                    let answer = try await socket.receive()
                    #expect(answer.errorcode == .unauthenticated && answer.message == message, "\(answer)")
                }
                #expect(try await a.http(ClusterTests.devices, headers: [.authorization: "Bearer " + token]).head.status == .unauthorized)
            }
            // B's own credential, as B's links present it: registering works, anything else is FORBIDDEN.
            let real = NodeCredentials(secret: Self.secret).token(for: try Self.nodeID(b))
            // (Once B has heartbeated: a node's credential is good while it is alive in the directory.)
            let status = try await ClusterTests.eventually { () -> HTTPResponse.Status? in
                let status = try? await a.http(ClusterTests.devices, headers: [.authorization: "Bearer " + real]).head.status
                return status == .unauthorized ? nil : status
            }
            #expect(status == .forbidden)
            try await a.webSocket(headers: [.authorization: "Bearer " + real]) { socket in
                try await socket.send(#"{"method":"CREATE","namespace":"system/providers","data":{"namespace":"auth/users","methods":["OPEN"]}}"#)
                #expect(try await socket.receive().errorcode == .forbidden)
            }
            // The secret never reaches a log line.
            #expect(!a.log.contains(Self.secret) && !b.log.contains(Self.secret))
        }
    }
}
