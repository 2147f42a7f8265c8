public import Hummingbird
public import HummingbirdWebSocket
import NIOCore

/// The request context of the gateway's router: Hummingbird's core storage, the WebSocket
/// upgrade slot, the peer's address (for rate limits and logs) and the connection.
public struct GatewayRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    /// The client's IP address, if known.
    public let clientAddress: String?
    /// The connection, watched by calls that are cancelled when the client hangs up.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.clientAddress = source.channel.remoteAddress?.ipAddress
        self.channel = source.channel
    }
}
