import Synchronization

/// The calls one WebSocket runs concurrently (frames with a `requestid`), at most `limit` at a
/// time, each in a task of its own.
///
/// Not a task group on purpose: a connection's read loop waiting inside a task group held about
/// 5 KiB more per idle socket (the task's allocator), measured with `flowgate-bench --only memory`.
final class ConcurrentCalls: Sendable {
    private struct State {
        var running: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        /// The reader, waiting for a free slot.
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
    }

    /// Starts `call` in a task of its own; first waits (the caller stops reading) while `limit`
    /// calls are running.
    func start(_ call: @escaping @Sendable () async -> Void) async {
        while !self.tryStart(call) {
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
    private func tryStart(_ call: @escaping @Sendable () async -> Void) -> Bool {
        self.state.withLock { state in
            guard !state.closed else { return true }
            guard state.running.count < self.limit else { return false }
            let id = state.nextID
            state.nextID &+= 1
            // The task cannot finish before it is registered: `finished` takes the same lock.
            state.running[id] = Task {
                await call()
                self.finished(id)
            }
            return true
        }
    }

    private func finished(_ id: UInt64) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.running[id] = nil
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
