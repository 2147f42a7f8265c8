import DequeModule
import FlowProtocol

/// The events waiting for one socket or stream (SPEC §13.1, §11 "slow readers"), written to it
/// by one task of its own, in order, so that a subscriber that reads slowly holds up nobody but
/// itself. At most `limit` events wait; an offer past that is refused (the watch overflows).
/// The last word of a watch (`ended`, `overflow`) is always taken: at most one per watch, and
/// watches per socket are capped, so the bound holds.
final class EventOutbox: Sendable {
    private struct State {
        var frames = Deque<EventFrame>()
        /// Frames beyond `limit` (last words), which do not count against it.
        var extra = 0
        var writing = false
        /// Replays waiting for room.
        var roomWaiters: [CheckedContinuation<Bool, Never>] = []
        var closed = false
    }

    let limit: Int
    private let connection: any ConnectionHandle
    private let metrics: GatewayMetrics
    private let state = Locked(State())

    init(connection: any ConnectionHandle, limit: Int, metrics: GatewayMetrics = .disabled) {
        self.connection = connection
        self.limit = limit
        self.metrics = metrics
    }

    /// Queues `frame` unless `limit` frames already wait; false when refused (or closed).
    func offer(_ frame: EventFrame) -> Bool {
        let start = self.state.withLock { state -> Bool? in
            guard !state.closed, state.frames.count - state.extra < self.limit else { return nil }
            return Self.append(frame, to: &state)
        }
        guard let start else { return false }
        if start { self.startWriter() }
        return true
    }

    /// Queues a watch's last frame whatever the queue holds.
    func force(_ frame: EventFrame) {
        let start = self.state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.extra += 1
            return Self.append(frame, to: &state)
        }
        if start { self.startWriter() }
    }

    /// Queues `frame`, first waiting while `limit` frames wait (a replay reads at the reader's
    /// pace); false once the outbox is closed.
    func enqueue(_ frame: EventFrame) async -> Bool {
        while true {
            if self.offer(frame) { return true }
            let open = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let resumeNow = self.state.withLock { state -> Bool? in
                    if state.closed { return false }
                    if state.frames.count - state.extra < self.limit { return true }
                    state.roomWaiters.append(continuation)
                    return nil
                }
                if let resumeNow { continuation.resume(returning: resumeNow) }
            }
            if !open { return false }
        }
    }

    /// The socket is gone: drops what waits and wakes the replays.
    func close() {
        let waiters = self.state.withLock { state in
            state.closed = true
            state.frames.removeAll()
            defer { state.roomWaiters.removeAll() }
            return state.roomWaiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }

    /// Whether the writer must be started for the frame just appended.
    private static func append(_ frame: EventFrame, to state: inout State) -> Bool {
        state.frames.append(frame)
        defer { state.writing = true }
        return !state.writing
    }

    private func startWriter() {
        Task { await self.write() }
    }

    /// Writes frames until none wait; one writer at a time.
    private func write() async {
        while true {
            let (next, waiters) = self.state.withLock { state -> (EventFrame?, [CheckedContinuation<Bool, Never>]) in
                guard !state.closed, let frame = state.frames.popFirst() else {
                    state.writing = false
                    return (nil, [])
                }
                if state.extra > 0, state.frames.count < state.extra { state.extra = state.frames.count }
                // Room again: the replays waiting for it go on.
                guard !state.roomWaiters.isEmpty else { return (frame, []) }
                defer { state.roomWaiters.removeAll() }
                return (frame, state.roomWaiters)
            }
            for waiter in waiters { waiter.resume(returning: true) }
            guard let next else { return }
            await self.connection.sendEvent(next)
            if next.isEvent { self.metrics.eventsDelivered(1) }
        }
    }
}
