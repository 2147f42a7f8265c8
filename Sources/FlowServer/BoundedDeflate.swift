import CompressNIO
import HummingbirdWSCompression
import NIOWebSocket
import WSCore

/// permessage-deflate (RFC 7692, swift-websocket's extension) with the close codes a client
/// should see: a message that inflates past the limit closes with 1009 (message too big) and
/// data that does not inflate with 1002 (protocol error), where the extension alone answers
/// 1011 (server error) to both. swift-websocket maps `NIOWebSocketError`s to those codes, so the
/// wrapper rethrows the zlib errors as those.
struct BoundedDeflate: WebSocketExtensionBuilder {
    static let name = "permessage-deflate"
    let inner: any WebSocketExtensionBuilder

    /// Inflating a message may reach `maxMessageBytes`, no more.
    static func factory(maxMessageBytes: Int) -> WebSocketExtensionFactory {
        let deflate = WebSocketExtensionFactory.perMessageDeflate(maxDecompressedFrameSize: maxMessageBytes)
        return WebSocketExtensionFactory { BoundedDeflate(inner: deflate.build()) }
    }

    func clientRequestHeader() -> String { self.inner.clientRequestHeader() }

    func serverReponseHeader(to request: WebSocketExtensionHTTPParameters) -> String? { self.inner.serverReponseHeader(to: request) }

    func serverExtension(from request: WebSocketExtensionHTTPParameters) throws -> (any WebSocketExtension)? {
        try self.inner.serverExtension(from: request).map(Extension.init)
    }

    func clientExtension(from response: WebSocketExtensionHTTPParameters) throws -> (any WebSocketExtension)? {
        try self.inner.clientExtension(from: response).map(Extension.init)
    }

    struct Extension: WebSocketExtension {
        let inner: any WebSocketExtension
        var name: String { self.inner.name }
        var reservedBits: WebSocketFrame.ReservedBits { self.inner.reservedBits }

        func processReceivedFrame(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws -> WebSocketFrame {
            do {
                return try await self.inner.processReceivedFrame(frame, context: context)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw NIOWebSocketError.invalidFrameLength
            } catch is CompressNIOError {
                throw NIOWebSocketError.fragmentedControlFrame
            }
        }

        func processFrameToSend(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws -> WebSocketFrame {
            try await self.inner.processFrameToSend(frame, context: context)
        }

        func shutdown() async { await self.inner.shutdown() }
    }
}
