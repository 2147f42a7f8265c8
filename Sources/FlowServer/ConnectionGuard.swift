import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTPTypes
import HTTPTypes
import Synchronization

/// What bounds one HTTP connection (SPEC §11), and the count of open ones.
struct ConnectionLimits: Sendable {
    let idleTimeout: Duration
    let headTimeout: Duration
    let maxHeadBytes: Int
    let maxConnections: Int
    let open: ConnectionCount
}

/// Open TCP connections, against `max_connections`.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Takes a place; false (and nothing taken) when `limit` are open.
    func enter(limit: Int) -> Bool {
        if self.count.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        self.count.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func leave() { self.count.wrappingSubtract(1, ordering: .relaxed) }

    var current: Int { self.count.load(ordering: .relaxed) }
}

/// The gateway's child channel: Hummingbird's HTTP/1 + WebSocket upgrade channel with
/// ``ConnectionGuard`` first in each connection's pipeline, so that connections are counted and
/// reaped (SPEC §11). ``ExchangeObserver`` goes in through Hummingbird's additional handlers.
struct GuardedChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value

    let inner: HTTP1WebSocketUpgradeChannel
    let limits: ConnectionLimits

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        self.inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try channel.pipeline.syncOperations.addHandler(ConnectionGuard(limits: self.limits), position: .first)
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        // Hummingbird logs a connection that closed before its first request was read as an error
        // ("Error handling upgrade result"); here that is routine: the guard reaps idle and slow
        // connections. Nothing else it logs while handling a connection is above debug.
        var quiet = logger
        if quiet.logLevel > .debug { quiet.logLevel = .critical }
        await self.inner.handle(value: value, logger: quiet)
    }
}

/// First in the pipeline, it sees every byte the client sends and the server writes: it counts
/// the connection against `max_connections` (closing it at once past the limit), finds where
/// each request head ends, and closes the connection when it has waited too long for its client
/// or the head grows too large (``ConnectionTimeouts``). A head that times out gets `408`, one
/// too large `431`, before the close; an idle connection is just closed. A `101` going out means
/// the connection became a WebSocket, which is no longer watched here.
///
/// It works on bytes, not on HTTP parts, because it must see a head before the decoder has one
/// and must let WebSocket frames pass once upgraded; ``ExchangeObserver`` tells it when a body
/// and a response end.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let limits: ConnectionLimits
    private var state: ConnectionTimeouts<ContinuousClock.Instant>
    /// The last four bytes of the head so far, to find its end ("\r\n\r\n") across reads.
    private var headTail: UInt32 = 0
    private var counted = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: ContinuousClock.Instant?
    private weak var context: ChannelHandlerContext?

    init(limits: ConnectionLimits) {
        self.limits = limits
        self.state = ConnectionTimeouts(
            idleTimeout: limits.idleTimeout, headTimeout: limits.headTimeout, maxHeadBytes: limits.maxHeadBytes, now: .now
        )
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.activate(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.release()
    }

    func channelActive(context: ChannelHandlerContext) {
        self.activate(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.release()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        if self.state.awaitingHead {
            // Only the head's own bytes count against max_head_bytes, not a body in the same read.
            let end = self.headEnd(in: buffer)
            self.state.received(buffer.readableBytes, headPart: end, now: .now)
            if self.state.headTooLarge { return self.refuse(context, "431 Request Header Fields Too Large") }
            if end != nil { self.state.headReceived(now: .now) }
        } else {
            self.state.received(buffer.readableBytes, now: .now)
        }
        context.fireChannelRead(data)
        self.schedule(context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !self.state.upgraded, self.state.inFlight > 0, Self.isSwitchingProtocols(self.unwrapOutboundIn(data)) {
            self.state.upgrade()
            self.timer?.cancel()
            self.timer = nil
        }
        context.write(data, promise: promise)
    }

    private static let switchingProtocols = Array("HTTP/1.1 101".utf8)

    private static func isSwitchingProtocols(_ data: IOData) -> Bool {
        guard case .byteBuffer(let buffer) = data else { return false }
        return buffer.readableBytesView.starts(with: Self.switchingProtocols)
    }

    /// How many bytes of `buffer` belong to the head: up to its blank line, or all of them.
    private func headEnd(in buffer: ByteBuffer) -> Int? {
        var window = self.headTail
        var offset = 0
        for byte in buffer.readableBytesView {
            offset += 1
            window = window << 8 | UInt32(byte)
            if window == 0x0D0A_0D0A {
                self.headTail = 0
                return offset
            }
        }
        self.headTail = window
        return nil
    }

    // MARK: What the observer reports

    func requestEnded() { self.update { $0.requestEnded() } }
    func responseEnded() { self.update { $0.responseEnded(now: .now) } }

    private func update(_ change: (inout ConnectionTimeouts<ContinuousClock.Instant>) -> Void) {
        change(&self.state)
        if let context = self.context { self.schedule(context) }
    }

    // MARK: Counting and timing

    private func activate(_ context: ChannelHandlerContext) {
        guard !self.counted else { return }
        guard self.limits.open.enter(limit: self.limits.maxConnections) else {
            context.close(promise: nil)
            return
        }
        self.counted = true
        self.schedule(context)
    }

    private func release() {
        if self.counted { self.limits.open.leave() }
        self.counted = false
    }

    /// Makes sure a timer fires by the current deadline (a later deadline is found when it fires).
    private func schedule(_ context: ChannelHandlerContext) {
        guard let deadline = self.state.deadline?.at else { return }
        if let scheduled = self.timerDeadline, scheduled <= deadline, self.timer != nil { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        let delay = ContinuousClock.now.duration(to: deadline)
        let nanoseconds = max(0, delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
        self.timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: .nanoseconds(nanoseconds)) { [weak self] in
            self?.fire()
        }
    }

    private func fire() {
        self.timer = nil
        self.timerDeadline = nil
        guard let context = self.context else { return }
        guard let (deadline, reason) = self.state.deadline else { return }
        guard deadline <= .now else {
            self.schedule(context)
            return
        }
        switch reason {
        case .head: self.refuse(context, "408 Request Timeout")
        case .idle, .body: context.close(promise: nil)
        }
    }

    /// Answers with `status` (written as bytes: the HTTP encoder is behind this handler) and closes.
    private func refuse(_ context: ChannelHandlerContext, _ status: String) {
        let response = "HTTP/1.1 \(status)\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        context.writeAndFlush(NIOAny(ByteBuffer(string: response))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// Among Hummingbird's additional handlers (after the HTTP codec, on connections that did not
/// upgrade): tells ``ConnectionGuard`` when a request body and a response end. A response that
/// says `Connection: close` closes the connection once written, so a request refused before its
/// body was read does not have that body drained.
final class ExchangeObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var connectionGuard: ConnectionGuard?
    private var closeAfterResponse = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.connectionGuard = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = self.unwrapInboundIn(data) { self.connectionGuard?.requestEnded() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head):
            if head.headerFields[.connection]?.lowercased() == "close" { self.closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            self.connectionGuard?.responseEnded()
            guard self.closeAfterResponse else { return context.write(data, promise: promise) }
            // Closed once the response is out, not before: a close fails writes still pending.
            context.writeAndFlush(data).assumeIsolated().whenComplete { result in
                promise?.completeWith(result)
                context.close(promise: nil)
            }
        }
    }
}
