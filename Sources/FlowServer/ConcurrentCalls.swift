import FlowProtocol

/// The calls one WebSocket runs, each in a task of its own, at most `limit` at a time: frames
/// with a `requestid` concurrently, frames without one in order (each starts when the one
/// before it has finished). Either way the read loop goes on reading while they run, so it sees
/// the socket close and every call still running is cancelled.
///
/// Not a task group on purpose: a connection's read loop waiting inside a task group held about
/// 5 KiB more per idle socket (the task's allocator), measured with `flowgate-bench --only memory`.
final class ConcurrentCalls: Sendable {
    private struct State {
        var running: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        /// The last call started in order, which the next one in order waits for.
        var lastInOrder: (id: UInt64, task: Task<Void, Never>)?
        /// The reader, waiting for a free slot.
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
    }

    let limit: Int
    private let state = Locked(State())

    init(limit: Int) {
        self.limit = limit
    }

    /// Starts `call` in a task of its own; first waits (the caller stops reading) while `limit`
    /// calls are running. With `inOrder`, the call runs once the previous call started
    /// `inOrder` has finished (skipped if the socket closed meanwhile).
    func start(inOrder: Bool = false, _ call: @escaping @Sendable () async -> Void) async {
        while !self.tryStart(inOrder: inOrder, call) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waits = self.state.withLock { state -> Bool in
                    guard state.running.count >= self.limit, !state.closed else { return false }
                    state.waiter = continuation
                    return true
                }
                if !waits { continuation.resume() }
            }
        }
    }

    /// Starts `call` if a slot is free (or drops it once closed); false when all slots are taken.
    private func tryStart(inOrder: Bool, _ call: @escaping @Sendable () async -> Void) -> Bool {
        self.state.withLock { state in
            guard !state.closed else { return true }
            guard state.running.count < self.limit else { return false }
            let id = state.nextID
            state.nextID &+= 1
            let previous = inOrder ? state.lastInOrder?.task : nil
            // The task cannot finish before it is registered: `finished` takes the same lock.
            let task = Task {
                await previous?.value
                if !Task.isCancelled { await call() }
                self.finished(id)
            }
            state.running[id] = task
            if inOrder { state.lastInOrder = (id, task) }
            return true
        }
    }

    private func finished(_ id: UInt64) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.running[id] = nil
            if state.lastInOrder?.id == id { state.lastInOrder = nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The socket is gone: cancels every running call (nobody is left to answer) and starts no more.
    func cancelAll() {
        let (tasks, waiter) = self.state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return (Array(state.running.values), state.waiter)
        }
        for task in tasks { task.cancel() }
        waiter?.resume()
    }
}
