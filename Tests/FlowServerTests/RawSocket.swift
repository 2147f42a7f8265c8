import NIOCore
import NIOPosix
import FlowProtocol

/// A bare TCP client: writes bytes as given and collects every byte the server sends, without
/// any WebSocket behaviour of its own (it never answers a ping).
final class RawSocket: Sendable {
    private let channel: any Channel
    private let received: Received

    final class Received: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Locked<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            self.bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) }
        }
    }

    static func connect(port: Int) async throws -> RawSocket {
        let received = Received()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawSocket(channel: channel, received: received)
    }

    private init(channel: any Channel, received: Received) {
        self.channel = channel
        self.received = received
    }

    func write(_ text: String) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(string: text))
    }

    var bytes: [UInt8] { self.received.bytes.withLock { $0 } }

    /// Whether the server closed the connection (or it was closed here).
    var isClosed: Bool { !self.channel.isActive }

    /// Waits (polling, bounded) until the connection is closed; whether it was.
    func waitForClose(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !self.isClosed && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        return self.isClosed
    }

    var text: String { String(decoding: self.bytes, as: UTF8.self) }

    /// Waits (polling, bounded) until the received bytes satisfy `condition`.
    func waitFor(timeout: Duration, _ condition: ([UInt8]) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(self.bytes) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition(self.bytes)
    }

    func close() async {
        try? await self.channel.close()
    }

    /// The opening handshake of a WebSocket at `path`.
    static func upgradeRequest(_ path: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }
}

extension Array where Element == UInt8 {
    /// Whether the bytes hold an unmasked close frame with `code`.
    func containsCloseFrame(code: UInt16) -> Bool {
        guard self.count >= 4 else { return false }
        for index in 0..<(self.count - 3) where self[index] == 0x88 && self[index + 2] == UInt8(code >> 8) && self[index + 3] == UInt8(code & 0xFF) {
            return true
        }
        return false
    }

    /// Whether the bytes hold an unmasked ping frame.
    var containsPing: Bool { self.contains(0x89) }
}
