import NIOCore
import NIOPosix
import FlowProtocol

/// A loopback TCP proxy that can cut every connection through it at once — no WebSocket close,
/// just the TCP connections gone, as when a network path or a process dies — and keeps
/// accepting new ones.
final class TCPProxy: Sendable {
    private let server: any Channel
    private let open = Locked<[any Channel]>([])
    let port: Int

    private init(server: any Channel) {
        self.server = server
        self.port = server.localAddress?.port ?? 0
    }

    /// A proxy on `port` (0: a free one) of loopback forwarding to `127.0.0.1:target`.
    static func start(forwardingTo target: Int, port: Int = 0) async throws -> TCPProxy {
        let box = Locked<TCPProxy?>(nil)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMap { outbound in
                        box.withLock { $0 }?.track(inbound, outbound)
                        let (left, right) = Glue.pair()
                        // Neither side reads before both handlers are in place (inbound does not read
                        // on its own; each handler asks for the first read once its channel is active).
                        return inbound.pipeline.addHandler(left).and(outbound.pipeline.addHandler(right)).map { _ in }
                    }
            }
            .bind(host: "127.0.0.1", port: port).get()
        let proxy = TCPProxy(server: server)
        box.withLock { $0 = proxy }
        return proxy
    }

    private func track(_ channels: any Channel...) {
        self.open.withLock { $0 += channels }
    }

    /// Closes every connection through the proxy; new ones are still accepted.
    func cut() async {
        let channels = self.open.withLock { open in
            defer { open = [] }
            return open
        }
        for channel in channels { try? await channel.close() }
    }

    func stop() async {
        await self.cut()
        try? await self.server.close()
    }
}

/// Forwards what one side reads to the other side, and closes the other side when one closes.
private final class Glue: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: each handler is used only on its channel's event loop; the pair share one loop.
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: Glue?
    private var context: ChannelHandlerContext?

    static func pair() -> (Glue, Glue) {
        let left = Glue()
        let right = Glue()
        left.partner = right
        right.partner = left
        return (left, right)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { context.read() }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.partner?.forward(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.context?.flush()
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.partner?.context?.close(promise: nil)
    }

    private func forward(_ buffer: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
    }
}
