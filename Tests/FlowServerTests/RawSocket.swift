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

    /// Connects to `port`. Without `autoRead` nothing is read until ``read()`` or
    /// ``startReading()``: the server's writes pile up in the kernel, as for a client that does
    /// not keep up.
    static func connect(port: Int, autoRead: Bool = true) async throws -> RawSocket {
        let received = Received()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: autoRead)
            .channelOption(.socketOption(.so_rcvbuf), value: autoRead ? 0 : 4096)
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

    func write(bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Reads once (without `autoRead`).
    func read() {
        self.channel.read()
    }

    /// Reads everything from now on.
    func startReading() async throws {
        try await self.channel.setOption(.autoRead, value: true)
        self.channel.read()
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
    /// A client's masked text frame holding `text`.
    static func maskedTextFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        var frame: [UInt8] = [0x81]
        switch payload.count {
        case ..<126: frame.append(0x80 | UInt8(payload.count))
        case ..<65536: frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default: frame += [0x80 | 127] + (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return frame
    }

    /// The text messages of the unmasked, unfragmented frames after an HTTP response head.
    var serverTextMessages: [String] {
        guard let headEnd = self.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound else { return [] }
        var messages: [String] = []
        var index = headEnd
        while index + 2 <= self.count {
            let opcode = self[index] & 0x0F
            var length = Int(self[index + 1] & 0x7F)
            var start = index + 2
            if length == 126 {
                guard start + 2 <= self.count else { break }
                length = Int(self[start]) << 8 | Int(self[start + 1])
                start += 2
            } else if length == 127 {
                guard start + 8 <= self.count else { break }
                length = self[start..<start + 8].reduce(0) { $0 << 8 | Int($1) }
                start += 8
            }
            guard start + length <= self.count else { break }
            if opcode == 1 { messages.append(String(decoding: self[start..<start + length], as: UTF8.self)) }
            index = start + length
        }
        return messages
    }

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
