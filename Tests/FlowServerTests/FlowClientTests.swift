import FlowClient
import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import Foundation
import Logging
import HTTPTypes
import HummingbirdTesting
import Synchronization
import Testing

/// FlowClient against the gateway `flowgate serve` builds: providing an endpoint that browsers
/// and integrations then call, surviving a cut connection, and a load run with a provider killed.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct FlowClientTests {
    static let clock = Namespace("demo/clock")!

    static func client(_ port: Int) -> FlowClient {
        FlowClient(configuration: .init(url: "ws://127.0.0.1:\(port)/ws", credential: .basic(username: "admin", password: LiveGateway.adminPassword)), logger: Self.debugLogger)
    }

    static var debugLogger: Logger {
        guard ProcessInfo.processInfo.environment["FLOWGATE_TEST_LOG"] != nil else { return .silent }
        var logger = Logger(label: "client", factory: { label in StreamLogHandler.standardError(label: label) })
        logger.logLevel = .trace
        return logger
    }

    /// Runs `client` for the length of `body`.
    static func running<T: Sendable>(_ clients: FlowClient..., body: () async throws -> T) async throws -> T {
        try await Self.running(clients, body: body)
    }

    static func running<T: Sendable>(_ clients: [FlowClient], body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { try await client.run() } }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    @Test func anEndpointProvidedThroughFlowClientIsCalledOverWebSocketAndHTTPAndPublished() async throws {
        try await LiveGateway.runShipped { live in
            let provider = Self.client(live.port)
            let caller = Self.client(live.port)
            try await Self.running(provider, caller) {
                let endpoint = ProvidedEndpoint(
                    namespace: Self.clock, title: "Clock", methods: [.list, .open, .run],
                    schema: ["type": "object", "properties": ["zone": ["type": "string"]], "required": ["zone"]]
                )
                _ = try await provider.provide(endpoint) { call in
                    if call.objectid == "missing" { throw FlowError(.doNotExist, "No clock called missing") }
                    return ["method": .string(call.method.rawValue), "objectid": call.objectid.map(JSONValue.string) ?? .null, "user": call.user.map(JSONValue.string) ?? .null]
                }
                // Over WebSocket, through a second FlowClient.
                let opened = try await caller.call(.open, Self.clock, objectid: "utc")
                #expect(opened.success && opened.data?["objectid"] == "utc" && opened.data?["user"] == "admin")
                let missing = try await caller.call(.open, Self.clock, objectid: "missing")
                #expect(missing.errorcode == .doNotExist && missing.message == "No clock called missing")
                let invalid = try await caller.call(.run, Self.clock, objectid: "utc", data: ["zone": 5])
                #expect(invalid.errorcode == .validationFailed)

                // Over HTTP with the envelope's fields in headers, at the application's root.
                let http = try await live.http("/api/demo/", headers: [.flowRequestMethod: "OPEN", .flowRequestNamespace: "demo/clock", .flowRequestObjectID: "cet"])
                #expect(http.head.status == .ok)
                #expect(try http.envelope().data?["objectid"] == "cet")

                let document = try await live.http("/api/openapi.json").bodyText
                #expect(document.contains("/api/demo/demo/clock/") && document.contains(#""required":["zone"]"#))

                // unprovide: gone from the registry's providers and from the document.
                try await provider.unprovide(Self.clock)
                #expect(await ProviderTests.eventually { live.gateway.providers.providerCount(Self.clock) == 0 })
                #expect(try await !live.http("/api/openapi.json").bodyText.contains("/api/demo/demo/clock/"))
                let after = try await caller.call(.open, Self.clock, objectid: "utc")
                #expect(after.errorcode == .providerUnavailable)
            }
        }
    }

    @Test func aCutProviderReconnectsAndRegistersAgainWithoutTheCallerDoingAnything() async throws {
        try await LiveGateway.runShipped(logger: Self.debugLogger) { live in
            let proxy = try await TCPProxy.start(forwardingTo: live.port)
            let provider = Self.client(proxy.port)
            try await Self.running(provider) {
                let first = try await provider.provide(ProvidedEndpoint(namespace: Self.clock, methods: [.open])) { _ in "tick" }
                #expect(try await live.http("/api/demo/demo/clock/x", headers: [.flowRequestMethod: "OPEN"]).head.status == .ok)

                await proxy.cut()
                // Callers see 503 while the provider is away — never 404 — then answers again.
                var statuses: [HTTPResponse.Status] = []
                let deadline = ContinuousClock.now + .seconds(10)
                while statuses.last != .ok || statuses.count < 2, ContinuousClock.now < deadline {
                    statuses.append(try await live.http("/api/demo/demo/clock/x", headers: [.flowRequestMethod: "OPEN"]).head.status)
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(statuses.last == .ok)
                #expect(statuses.allSatisfy { $0 == .ok || $0 == .serviceUnavailable }, "\(statuses)")
                let second = try #require(provider.registrationID(for: Self.clock))
                #expect(second != first)
                #expect(live.gateway.providers.providerCount(Self.clock) == 1)
            }
            await proxy.stop()
        }
    }

    @Test func aRefusedClientKeepsTryingAndConnectsOnceASocketIsFree() async throws {
        try await LiveGateway.runShipped(configure: { $0.maxSockets = 1 }) { live in
            var configuration = FlowClientConfiguration(
                url: "ws://127.0.0.1:\(live.port)/ws", credential: .basic(username: "admin", password: LiveGateway.adminPassword),
                callTimeout: .seconds(20), maxBackoff: .milliseconds(300), pingInterval: .milliseconds(500)
            )
            configuration.initialBackoff = .milliseconds(50)
            let client = FlowClient(configuration: configuration, logger: Self.debugLogger)
            // The only socket is taken: the client is refused with 1013, again and again.
            try await live.webSocket { socket in
                try await socket.send(#"{"method":"LIST","namespace":"system/endpoints"}"#)
                _ = try await socket.receive()
                try await Self.running(client) {
                    // The socket opens and is closed at once: no answer.
                    await #expect(throws: FlowClientError.self) { try await client.call(.list, Namespace("system/endpoints")!) }
                    try await Task.sleep(for: .seconds(1))
                }
            }
            // Free: it connects by itself and provides.
            try await Self.running(client) {
                let id = try await client.provide(ProvidedEndpoint(namespace: Self.clock, methods: [.open])) { _ in "tick" }
                #expect(!id.isEmpty && client.isConnected)
            }
        }
    }

    @Test func aCallWithoutAnAnswerWithinTheCallTimeoutThrowsTimedOut() async throws {
        try await LiveGateway.runShipped { live in
            let provider = Self.client(live.port)
            var configuration = FlowClientConfiguration(
                url: "ws://127.0.0.1:\(live.port)/ws", credential: .basic(username: "admin", password: LiveGateway.adminPassword),
                callTimeout: .milliseconds(300)
            )
            configuration.initialBackoff = .milliseconds(50)
            let caller = FlowClient(configuration: configuration, logger: Self.debugLogger)
            try await Self.running(provider, caller) {
                _ = try await provider.provide(ProvidedEndpoint(namespace: Self.clock, methods: [.open])) { _ in
                    try await Task.sleep(for: .seconds(5))
                    return "late"
                }
                let start = ContinuousClock.now
                await #expect(throws: FlowClientError.timedOut) { try await caller.call(.open, Self.clock, objectid: "x") }
                #expect(ContinuousClock.now - start < TestTime.bound(.seconds(2)))
                // The caller's request was abandoned, not the connection: the next call works.
                #expect(try await caller.call(.list, Namespace("system/endpoints")!).success)
            }
        }
    }

    /// The issue's load run: 4 providers of one namespace, 10,000 calls from 16 callers, one
    /// provider killed halfway. Every call is answered; idempotent ones move to another provider.
    @Test func tenThousandCallsWithAProviderKilledHalfwayAllGetAnswers() async throws {
        try await LiveGateway.runShipped { live in
            let proxies = try await [0, 1, 2, 3].asyncMap { _ in try await TCPProxy.start(forwardingTo: live.port) }
            let providers = proxies.map { Self.client($0.port) }
            let callers = (0..<16).map { _ in Self.client(live.port) }
            let tally = LoadTally()
            try await Self.running(providers + callers) {
                for (index, provider) in providers.enumerated() {
                    _ = try await provider.provide(ProvidedEndpoint(namespace: Self.clock, methods: [.open, .run], concurrency: 32)) { _ in
                        tally.served.withLock { $0[index] += 1 }
                        try await Task.sleep(for: .milliseconds(2))
                        return .integer(Int64(index))
                    }
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while tally.answered.load(ordering: .relaxed) < 5_000 { try await Task.sleep(for: .milliseconds(5)) }
                        await proxies[0].stop()
                    }
                    for (number, caller) in callers.enumerated() {
                        group.addTask {
                            for index in 0..<625 {
                                let run = index % 4 == 3
                                let key: String
                                do {
                                    let response = try await caller.call(run ? .run : .open, Self.clock, objectid: "c\(number)-\(index)", data: run ? [:] : nil)
                                    key = "\(run ? "RUN" : "OPEN") \(response.success ? "ok" : response.errorcode?.rawValue ?? "?")"
                                } catch {
                                    key = "\(run ? "RUN" : "OPEN") no answer: \(error)"
                                }
                                tally.outcomes.withLock { $0[key, default: 0] += 1 }
                                tally.answered.add(1, ordering: .relaxed)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let counts = tally.outcomes.withLock { $0 }
            let retried = live.gateway.providers.retriedCalls
            print("provider load: outcomes \(counts.sorted { $0.key < $1.key }), calls served per provider \(tally.served.withLock { $0 }), retried on another provider \(retried)")
            #expect(counts.values.reduce(0, +) == 10_000)
            // index % 4 == 3 is a RUN: 156 of each caller's 625 calls, 469 OPENs.
            #expect(counts["OPEN ok"] == 16 * 469, "every idempotent call is answered with success, retried if its provider died")
            #expect(counts.keys.allSatisfy { ["OPEN ok", "RUN ok", "RUN PROVIDER_UNAVAILABLE"].contains($0) }, "\(counts)")
            #expect(tally.served.withLock { $0 }.allSatisfy { $0 > 0 })
            #expect(live.gateway.providers.pendingCalls == 0)
            for proxy in proxies { await proxy.stop() }
        }
    }
}

/// What the load run saw, shared by its tasks.
final class LoadTally: Sendable {
    let served = Locked<[Int]>([0, 0, 0, 0])
    let outcomes = Locked<[String: Int]>([:])
    let answered = Atomic<Int>(0)
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
