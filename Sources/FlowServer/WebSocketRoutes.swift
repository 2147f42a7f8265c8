import FlowCore
import FlowProtocol
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOWebSocket

/// The WebSocket routes: `/ws`, `/ws/<namespace>`, and `/diagnostics/echo` when enabled.
struct WebSocketRoutes {
    let dispatcher: Dispatcher
    let providers: ProviderHub
    let watches: WatchHub
    let connections: ConnectionRegistry
    let configuration: GatewayConfiguration
    let logger: Logger

    func add(to router: Router<GatewayRequestContext>) {
        router.ws("/ws", shouldUpgrade: Self.shouldUpgrade) { inbound, outbound, context in
            await self.serve(inbound, outbound, request: context.request, clientAddress: context.requestContext.clientAddress)
        }
        router.ws("/ws/**", shouldUpgrade: Self.shouldUpgrade) { inbound, outbound, context in
            await self.serve(inbound, outbound, request: context.request, clientAddress: context.requestContext.clientAddress)
        }
        if self.configuration.diagnosticsEcho {
            router.ws("/diagnostics/echo", shouldUpgrade: Self.shouldUpgrade) { inbound, outbound, _ in
                await self.withSlot(outbound, credential: nil) { _ in
                    await EchoConnection(configuration: self.configuration).run(inbound: inbound, outbound: outbound)
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

    private func serve(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, request: Request, clientAddress: String?) async {
        var defaultNamespace: Namespace?
        if case .namespace(let namespace) = Self.pathNamespace(request) { defaultNamespace = namespace }
        let credential = try? CredentialSources.credential(headers: request.headers, query: request.uri.queryParameters)
        var logger = self.logger
        if let clientAddress { logger[metadataKey: "flow.client"] = .string(clientAddress) }
        await self.withSlot(outbound, credential: credential) { id in
            let connection = WebSocketConnection(
                dispatcher: self.dispatcher, providers: self.providers, watches: self.watches, handle: SocketHandle(id: id, outbound: outbound, logger: logger),
                configuration: self.configuration, defaultNamespace: defaultNamespace,
                socketCredential: credential, clientAddress: clientAddress, logger: logger
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
