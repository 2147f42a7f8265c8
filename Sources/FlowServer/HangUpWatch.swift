import FlowCore
import FlowProtocol
import NIOCore

/// Cancels an HTTP call when its client hangs up before the answer, so that a provider gets its
/// `cancel` and an upstream request is abandoned (SPEC §5.4: the caller went away).
///
/// Hummingbird does not cancel a handler when its connection closes, and it lets the client
/// half-close its side (so a hang-up does not close the channel before the response is
/// written). The first watched call on a connection therefore adds ``HangUpHandler`` in front
/// of its pipeline, which reports the client's end of input (or the connection closing) once;
/// that cancels the calls still running on the connection. A client that half-closes after
/// sending its request (`nc -N`) counts as gone too.
final class HangUpWatch: Sendable {
    private struct State {
        var nextID: UInt64 = 0
        /// Per open connection that had a watched call: the cancel handlers of those running.
        var connections: [ObjectIdentifier: [UInt64: @Sendable () -> Void]] = [:]
    }

    private let state = Locked(State())

    /// Runs `operation` in a task of its own, cancelled if `channel` closes first.
    func run<T: Sendable>(on channel: any Channel, _ operation: @escaping @Sendable () async -> T) async -> T {
        let task = Task { await operation() }
        let id = self.observe(channel) { task.cancel() }
        let value = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        self.forget(channel, id)
        return value
    }

    /// Calls `action` once, when the client of `channel` hangs up (at once if it already has);
    /// ``forget(_:_:)`` withdraws it.
    func observe(_ channel: any Channel, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let key = ObjectIdentifier(channel)
        let (id, first) = self.state.withLock { state in
            defer { state.nextID &+= 1 }
            let first = state.connections[key] == nil
            state.connections[key, default: [:]][state.nextID] = action
            return (state.nextID, first)
        }
        if first {
            // Runs at once if the connection is already closed.
            channel.closeFuture.whenComplete { _ in self.closed(key) }
            channel.pipeline.addHandler(HangUpHandler { self.closed(key) }, position: .first).whenFailure { _ in self.closed(key) }
        }
        return id
    }

    /// Withdraws an ``observe(_:_:)``. The connection's entry stays while it is open, so its
    /// handler is added once.
    func forget(_ channel: any Channel, _ id: UInt64) {
        self.state.withLock { _ = $0.connections[ObjectIdentifier(channel)]?.removeValue(forKey: id) }
    }

    private func closed(_ key: ObjectIdentifier) {
        let cancels = self.state.withLock { $0.connections.removeValue(forKey: key) }
        for cancel in (cancels ?? [:]).values { cancel() }
    }
}

/// Reports once that the client ended its input (`inputClosed`) or the connection went inactive.
final class HangUpHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny
    private let hungUp: @Sendable () -> Void

    init(_ hungUp: @escaping @Sendable () -> Void) {
        self.hungUp = hungUp
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { self.hungUp() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.hungUp()
        context.fireChannelInactive()
    }
}

/// One HTTP connection's hang-up, as the dispatcher asks for it.
struct ChannelHangUp: HangUpSignal {
    let watch: HangUpWatch
    let channel: any Channel

    func run<T: Sendable>(_ operation: @escaping @Sendable () async -> T) async -> T {
        await self.watch.run(on: self.channel, operation)
    }
}
