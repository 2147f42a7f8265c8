import FlowAuth
import FlowCore
import FlowProtocol
import FlowServer
import FlowStoreTestSupport
import FlowTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOWebSocket
import ServiceLifecycle
import WSClient
import WSCore

/// A real gateway on a free loopback port, run by the same `ServiceGroup` setup as `flowgate serve`.
struct LiveGateway: Sendable {
    let gateway: Gateway
    let port: Int
    let group: ServiceGroup
    var credentialHeaders: HTTPFields = [:]

    static func run(
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        endpoints: [any Endpoint] = [EchoEndpoint()],
        authenticator: any Authenticator = OpenAccessAuthenticator(),
        policy: any AuthorizationPolicy = OpenAccessPolicy(),
        logger: Logger = .silent,
        _ body: (LiveGateway) async throws -> Void
    ) async throws {
        var configuration = Self.testConfiguration
        configure(&configuration)
        let registry = EndpointRegistry()
        for endpoint in endpoints { try registry.register(endpoint) }
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let gateway = try Gateway(
            configuration: configuration, authenticator: authenticator, policy: policy, registry: registry, logger: logger,
            onServerRunning: { portContinuation.yield($0) }
        )
        try await Self.serve(gateway, ports: ports, body)
    }

    /// The gateway exactly as `flowgate serve` builds it, on the repository's `Endpoints/` and
    /// `Schemas/`, with its database in a fresh temporary folder.
    static func runShipped(
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        logger: Logger = .silent,
        _ body: (LiveGateway) async throws -> Void
    ) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-live-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var configuration = Self.testConfiguration
        configuration.endpointsDirectory = Self.repository.appendingPathComponent("Endpoints").path
        configuration.schemasDirectory = Self.repository.appendingPathComponent("Schemas").path
        configuration.dataDirectory = folder.appendingPathComponent("data").path
        configure(&configuration)
        configuration.adminPassword = Self.adminPassword
        configuration.auth.bcryptCost = 4
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let gateway = try await Gateway.build(configuration: configuration, logger: logger, onServerRunning: { portContinuation.yield($0) })
        try await Self.serve(gateway, ports: ports, credentialHeaders: Self.adminHeaders, body)
    }

    /// ``runShipped(configure:logger:_:)`` on a new, empty store of `kind`.
    static func runShipped(
        on kind: StoreKind, configure: (inout GatewayConfiguration) -> Void = { _ in }, _ body: (LiveGateway) async throws -> Void
    ) async throws {
        try await kind.withDaemonEnvironment { environment in
            try await Self.runShipped(configure: { configuration in
                configuration.store = environment["FLOWGATE_STORE"]
                configure(&configuration)
            }, body)
        }
    }

    /// The first admin's password in shipped test gateways and daemons.
    static let adminPassword = "test-admin-password"
    /// HTTP Basic for that admin: what shipped-gateway tests send unless they give a credential.
    static let adminHeaders: HTTPFields = [.authorization: "Basic " + Data("admin:\(adminPassword)".utf8).base64EncodedString()]

    /// Defaults for tests: a free port, a short drain.
    static var testConfiguration: GatewayConfiguration {
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.drainTimeout = .seconds(2)
        return configuration
    }

    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    private static func serve(
        _ gateway: Gateway, ports: AsyncStream<Int>, credentialHeaders: HTTPFields = [:], _ body: (LiveGateway) async throws -> Void
    ) async throws {
        let group = ServiceGroup(configuration: .init(services: gateway.services, logger: .silent))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let live = LiveGateway(gateway: gateway, port: port, group: group, credentialHeaders: credentialHeaders)
            do {
                try await body(live)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

/// Real clients for a gateway listening on loopback at `port`: the in-process ``LiveGateway``
/// and the real binary (``DaemonProcess``) alike.
protocol LoopbackClient {
    var port: Int { get }
    /// Sent with every request and upgrade that carries no credential of its own.
    var credentialHeaders: HTTPFields { get }
}

extension LiveGateway: LoopbackClient {}

extension LoopbackClient {
    /// One HTTP request on a fresh connection.
    func http(_ uri: String, method: HTTPRequest.Method = .get, headers: HTTPFields = [:], body: String? = nil) async throws -> TestClient.Response {
        try await self.http(uri, method: method, headers: headers, bytes: body.map { Array($0.utf8) })
    }

    func http(_ uri: String, method: HTTPRequest.Method = .get, headers: HTTPFields = [:], bytes: [UInt8]?) async throws -> TestClient.Response {
        let client = TestClient(host: "127.0.0.1", port: self.port)
        client.connect()
        let headers = self.withCredential(headers)
        do {
            let response = try await client.execute(.init(uri, method: method, headers: headers, body: bytes.map { ByteBuffer(bytes: $0) }))
            try await client.shutdown()
            return response
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// `headers`, with ``credentialHeaders`` added when they carry no credential (or the `anonymous` marker, which is removed).
    func withCredential(_ headers: HTTPFields) -> HTTPFields {
        if headers[.authorization] != nil || headers[.flowAuthToken] != nil || headers[.anonymous] != nil { return headers.filter { $0.name != .anonymous } }
        var all = headers
        all.append(contentsOf: self.credentialHeaders)
        return all
    }

    /// Opens a WebSocket at `path`, runs `body` with it, and returns the close frame the server sent.
    @discardableResult
    func webSocket(
        _ path: String = "/ws",
        headers: HTTPFields = [:],
        _ body: @escaping @Sendable (TestSocket) async throws -> Void
    ) async throws -> WebSocketCloseFrame? {
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = 1 << 22
        configuration.additionalHeaders = self.withCredential(headers)
        configuration.autoPing = .disabled
        return try await WebSocketClient.connect(url: "ws://127.0.0.1:\(self.port)\(path)", configuration: configuration, logger: .silent) {
            inbound, outbound, _ in
            try await body(TestSocket(inbound: inbound, outbound: outbound))
        }
    }
}

/// The client side of a test WebSocket: send text or raw frames, receive messages.
///
/// Unchecked Sendable: a test uses it from one task at a time, also when a nested socket's
/// closure (another task) takes its turn with it while the outer one waits.
final class TestSocket: @unchecked Sendable {
    private var iterator: WebSocketInboundMessageStream.AsyncIterator
    let outbound: WebSocketOutboundWriter

    init(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) {
        self.iterator = inbound.messages(maxSize: 1 << 22).makeAsyncIterator()
        self.outbound = outbound
    }

    func send(_ text: String) async throws {
        try await self.outbound.write(.text(text))
    }

    func sendFrame(opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true) async throws {
        try await self.outbound.write(.custom(WebSocketFrame(fin: fin, opcode: opcode, data: ByteBuffer(bytes: bytes))))
    }

    /// The next text message as raw text; nil once the server closed.
    func receiveText() async throws -> String? {
        while let message = try await self.iterator.next() {
            if case .text(let text) = message { return text }
        }
        return nil
    }

    /// The next message parsed as a response envelope.
    func receive() async throws -> Response {
        guard let text = try await self.receiveText() else { throw SocketClosed() }
        return try Response(decoding: Array(text.utf8))
    }

    /// Waits until the server closes the connection; fails if another message arrives first.
    func expectClosed() async throws {
        if let message = try await self.iterator.next() { throw UnexpectedMessage(message: "\(message)") }
    }

    /// ``expectClosed()``, bounded: past `limit` the client closes with 1000 itself, so a test that
    /// expects the server's close code fails instead of hanging.
    func expectClosedByServer(within limit: Duration) async throws {
        let outbound = self.outbound
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Task.sleep(for: TestTime.bound(limit))
                try await outbound.close(.normalClosure, reason: "the server did not close")
            }
            try await self.expectClosed()
            group.cancelAll()
        }
    }

    struct SocketClosed: Error {}
    struct UnexpectedMessage: Error { let message: String }
}

extension HTTPField.Name {
    static let flowAuthToken = Self("Flow-Auth-Token")!
    static let flowRequestObjectID = Self("Flow-Request-ObjectId")!
    static let flowRequestNamespace = Self("Flow-Request-Namespace")!
    static let flowRequestMethod = Self("Flow-Request-Method")!
    static let flowRequestParameters = Self("Flow-Request-Parameters")!
    static let flowRequestID = Self("Flow-Request-Id")!
    static let flowErrorID = Self("Flow-Error-Id")!
    static let flowUser = Self("Flow-User")!
    /// Test-only marker: send no default credential (stripped before sending).
    static let anonymous = Self("X-Test-Anonymous")!
}

extension TestClient.Response {
    /// The body parsed as a response envelope.
    func envelope() throws -> Response { try Response(decoding: Array(self.bodyText.utf8)) }
    var bodyText: String { self.body.map { String(buffer: $0) } ?? "" }
}
