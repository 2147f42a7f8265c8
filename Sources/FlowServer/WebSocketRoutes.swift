import FlowCore
import FlowProtocol
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOWebSocket

/// The WebSocket routes: `/ws`, `/ws/<namespace>`, and `/diagnostics/echo` when enabled.
/// A class: every open socket's handler closure captures it, and a reference is 8 bytes where
/// this struct with its configuration was ~700.
final class WebSocketRoutes: Sendable {
    let dispatcher: Dispatcher
    let providers: ProviderHub
    let watches: WatchHub
    let connections: ConnectionRegistry
    let configuration: GatewayConfiguration
    /// What each socket's read loop applies, taken from the configuration once.
    let limits: SocketLimits
    let logger: Logger

    init(dispatcher: Dispatcher, providers: ProviderHub, watches: WatchHub, connections: ConnectionRegistry, configuration: GatewayConfiguration, logger: Logger) {
        self.dispatcher = dispatcher
        self.providers = providers
        self.watches = watches
        self.connections = connections
        self.configuration = configuration
        self.limits = SocketLimits(configuration)
        self.logger = logger
    }

    func add(to router: Router<GatewayRequestContext>) {
        router.ws("/ws", shouldUpgrade: Self.shouldUpgrade) { inbound, outbound, context in
            await self.serve(inbound, outbound, self.opening(context))
        }
        router.ws("/ws/**", shouldUpgrade: Self.shouldUpgrade) { inbound, outbound, context in
            await self.serve(inbound, outbound, self.opening(context))
        }
        if self.configuration.diagnosticsEcho {
            router.ws("/diagnostics/echo", shouldUpgrade: Self.shouldUpgrade) { inbound, outbound, _ in
                await self.withSlot(outbound, credential: nil) { _ in
                    await EchoConnection(limits: self.limits).run(inbound: inbound, outbound: outbound)
                }
            }
        }
    }

    /// Refuses, with an HTTP error, what cannot become a working socket: a plain GET, a bad
    /// namespace in the path, a token given twice with different values.
    @Sendable
    static func shouldUpgrade(_ request: Request, _ context: GatewayRequestContext) async throws -> RouterShouldUpgrade {
        guard request.headers[.upgrade] != nil else {
            throw HTTPError(.upgradeRequired, message: "This is a WebSocket endpoint")
        }
        if Self.pathNamespace(request) == .invalid {
            throw HTTPError(.badRequest, message: "The path does not name a valid namespace")
        }
        do {
            _ = try CredentialSources.credential(headers: request.headers, query: request.uri.queryParameters)
        } catch {
            throw HTTPError(.badRequest, message: error.message)
        }
        return .upgrade([:])
    }

    enum PathNamespace: Equatable {
        case none
        case namespace(Namespace)
        case invalid
    }

    /// The namespace of `/ws/<namespace>`.
    static func pathNamespace(_ request: Request) -> PathNamespace {
        let path = request.uri.path
        guard path.hasPrefix("/ws/") else { return .none }
        let text = path.dropFirst(4)
        if text.allSatisfy({ $0 == "/" }) { return .none }
        return Namespace(text).map { .namespace($0) } ?? .invalid
    }

    /// What a socket keeps of its upgrade request, its client named as `trusted_proxies` says.
    private func opening(_ context: WebSocketRouterContext<GatewayRequestContext>) -> Opening {
        let client = self.configuration.trustedProxies.client(peer: context.requestContext.clientAddress, headers: context.request.headers)
        return Opening(context.request, clientAddress: client)
    }

    /// What a socket keeps of its upgrade request (not the request itself, which the socket's
    /// task frames would otherwise hold for the socket's life).
    struct Opening {
        let defaultNamespace: Namespace?
        let credential: Credential?
        let clientAddress: String?

        init(_ request: Request, clientAddress: String?) {
            if case .namespace(let namespace) = WebSocketRoutes.pathNamespace(request) {
                self.defaultNamespace = namespace
            } else {
                self.defaultNamespace = nil
            }
            self.credential = try? CredentialSources.credential(headers: request.headers, query: request.uri.queryParameters)
            self.clientAddress = clientAddress
        }
    }

    private func serve(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, _ opening: Opening) async {
        // The gateway's logger as it is (a copy with metadata would cost every idle socket its
        // own storage); the two debug lines a socket writes name the client themselves.
        let logger = self.logger
        await self.withSlot(outbound, credential: opening.credential) { id in
            let connection = WebSocketConnection(
                dispatcher: self.dispatcher, providers: self.providers, watches: self.watches, handle: SocketHandle(id: id, outbound: outbound, logger: logger),
                limits: self.limits, defaultNamespace: opening.defaultNamespace,
                socketCredential: opening.credential, clientAddress: opening.clientAddress, logger: logger
            )
            await connection.run(inbound: inbound, outbound: outbound)
        }
    }

    /// Runs `body` while the socket is counted; over `max_sockets` or while draining the socket
    /// is closed at once (1013 try again later / 1001 going away).
    private func withSlot(_ outbound: WebSocketOutboundWriter, credential: Credential?, _ body: (Int) async -> Void) async {
        guard !self.dispatcher.isDraining else {
            try? await outbound.close(.goingAway, reason: "Server shutting down")
            return
        }
        guard let id = self.connections.add(.websocket, credential: credential, { code, reason in try? await outbound.close(code, reason: reason) }) else {
            self.logger.warning("refusing WebSocket: max_sockets reached", metadata: ["flow.limit": "\(self.configuration.maxSockets)"])
            try? await outbound.close(.init(codeNumber: 1013), reason: "Too many connections")
            return
        }
        defer { self.connections.remove(id) }
        await body(id)
    }
}
