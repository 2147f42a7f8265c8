public import FlowProtocol
public import Logging
public import ServiceLifecycle
import HTTPTypes
import WSClient
import WSCore

/// A Swift client of the gateway for subsystems: calls endpoints and provides them (SPEC §5.4).
///
/// One WebSocket, kept open by ``run()``: when it drops, the client reconnects with backoff
/// and registers again every endpoint it provides, so callers see `PROVIDER_UNAVAILABLE` for
/// a moment and then answers, with nothing to do on their side.
///
/// ```swift
/// let client = FlowClient(configuration: .init(url: "ws://127.0.0.1:8080/ws", credential: .token(token)))
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await client.run() }
///     _ = try await client.provide(ProvidedEndpoint(namespace: Namespace("scheduler/queue")!, methods: [.list])) { call in
///         ["jobs": []]
///     }
///     let answer = try await client.call(.list, Namespace("scheduler/queue")!)
/// }
/// ```
public final class FlowClient: Service, Sendable {
    /// Serves one call: return the answer's `data`, or throw ``FlowError`` for a failure the
    /// caller should see (anything else answers `INTERNAL_ERROR`). Runs concurrently with other
    /// calls and is cancelled when the gateway cancels the call.
    public typealias Handler = @Sendable (ProviderCall) async throws -> JSONValue?
    /// Serves one call with the whole answer: a success with its `status`, `dataType` and
    /// `paging`, or a failure. Throwing ``FlowError`` is a failure as for ``Handler``.
    public typealias Answerer = @Sendable (ProviderCall) async throws -> Response

    struct Provision {
        let endpoint: ProvidedEndpoint
        let handler: Answerer
        /// The gateway's id for the registration on the current connection.
        var registrationID: String?
        /// A registration attempt is running.
        var registering = false
    }

    /// An answer the caller is (or will be) waiting for.
    struct Pending {
        var continuation: CheckedContinuation<Response, any Error>?
        var result: Result<Response, any Error>?
    }

    struct State {
        var outbound: WebSocketOutboundWriter?
        var connectWaiters: [UInt64: CheckedContinuation<WebSocketOutboundWriter?, Never>] = [:]
        var pending: [String: Pending] = [:]
        var provisions: [Namespace: Provision] = [:]
        var handlers: [String: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        var stopped = false

        mutating func newID() -> UInt64 {
            self.nextID &+= 1
            return self.nextID
        }
    }

    public let configuration: FlowClientConfiguration
    let logger: Logger
    let state = Locked(State())
    static let providers = Namespace("system/providers")!

    public init(configuration: FlowClientConfiguration, logger: Logger = Logger(label: "flowgate.client")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Whether the WebSocket is open right now.
    public var isConnected: Bool { self.state.withLock { $0.outbound != nil } }

    /// The gateway's id for the registration of `namespace` on the current connection; nil
    /// while it is not registered (before ``provide(_:handler:)`` returns, or while reconnecting).
    public func registrationID(for namespace: Namespace) -> String? {
        self.state.withLock { $0.provisions[namespace]?.registrationID }
    }

    // MARK: Connection

    /// Keeps the connection open until the task is cancelled or a graceful shutdown begins:
    /// connects, serves, and after every drop waits (exponential backoff) and connects again.
    /// A client can be run again after it stopped.
    public func run() async throws {
        self.state.withLock { $0.stopped = false }
        await cancelWhenGracefulShutdown {
            var attempt = 0
            while !Task.isCancelled {
                do {
                    try await WebSocketClient.connect(url: self.configuration.url, configuration: self.webSocketConfiguration, logger: self.logger) {
                        inbound, outbound, _ in
                        try await self.serve(inbound, outbound)
                    }
                } catch {
                    self.logger.debug("connection failed", metadata: ["flow.error": "\(error)"])
                }
                if self.disconnected() { attempt = 0 }
                guard !Task.isCancelled else { break }
                try? await Task.sleep(for: self.configuration.backoff(attempt: attempt))
                attempt += 1
            }
        }
        self.stop()
    }

    private var webSocketConfiguration: WebSocketClientConfiguration {
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = self.configuration.maxMessageBytes
        configuration.autoPing = .enabled(timePeriod: self.configuration.pingInterval)
        if let authorization = self.configuration.authorization {
            configuration.additionalHeaders[.authorization] = authorization
        }
        return configuration
    }

    /// One open connection: registers what is provided, then reads until the socket closes.
    private func serve(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter) async throws {
        let waiters = self.state.withLock { state in
            state.outbound = outbound
            defer { state.connectWaiters = [:] }
            return state.connectWaiters.values
        }
        for waiter in waiters { waiter.resume(returning: outbound) }
        self.logger.info("connected", metadata: ["flow.url": .string(self.configuration.url)])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.registerAll() }
            for try await message in inbound.messages(maxSize: self.configuration.maxMessageBytes) {
                guard case .text(let text) = message else { continue }
                self.receive(text, outbound: outbound)
            }
            group.cancelAll()
        }
    }

    /// The connection closed: calls in flight fail with ``FlowClientError/connectionLost``, the
    /// handlers running stop (the gateway has answered their callers already), registrations
    /// are forgotten until the next connection. Returns whether a connection had been open.
    private func disconnected() -> Bool {
        let (wasOpen, pending, handlers) = self.state.withLock { state in
            defer {
                state.outbound = nil
                state.pending = [:]
                state.handlers = [:]
                for namespace in state.provisions.keys { state.provisions[namespace]?.registrationID = nil }
            }
            return (state.outbound != nil, state.pending.values.compactMap(\.continuation), Array(state.handlers.values))
        }
        for continuation in pending { continuation.resume(throwing: FlowClientError.connectionLost) }
        for handler in handlers { handler.cancel() }
        if wasOpen { self.logger.notice("connection lost; reconnecting") }
        return wasOpen
    }

    private func stop() {
        let waiters = self.state.withLock { state in
            state.stopped = true
            defer { state.connectWaiters = [:] }
            return state.connectWaiters.values
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }

    /// The open connection, waiting for one if needed.
    func connection() async throws -> WebSocketOutboundWriter {
        let id = self.state.withLock { $0.newID() }
        let outbound = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WebSocketOutboundWriter?, Never>) in
                let ready = self.state.withLock { state -> WebSocketOutboundWriter?? in
                    if let outbound = state.outbound { return .some(outbound) }
                    if state.stopped || Task.isCancelled { return .some(nil) }
                    state.connectWaiters[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            self.state.withLock { $0.connectWaiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
        guard let outbound else {
            if Task.isCancelled { throw CancellationError() }
            throw FlowClientError.stopped
        }
        return outbound
    }
}
