public import Hummingbird
public import HummingbirdWebSocket
import NIOCore

/// The request context of the gateway's router: Hummingbird's core storage, the WebSocket
/// upgrade slot, and the peer's address (for rate limits and logs).
public struct GatewayRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    /// The client's IP address, if known.
    public let clientAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.clientAddress = source.channel.remoteAddress?.ipAddress
    }
}
