import FlowProtocol

/// Enforces the call timeout without a timer per call: calls register their deadline, and one
/// sweeper task, alive only while calls are running, cancels the calls that run past it.
///
/// A call runs in the task that dispatches it, and that task is what gets cancelled, so it must
/// be dedicated to the call (the transports run each call in a child task of its own). A
/// per-call `Task.sleep` raced in a task group cost about as much as the rest of a stored-object
/// OPEN together (Benchmarks/README.md).
final class CallDeadlines: Sendable {
    private struct Running {
        let deadline: ContinuousClock.Instant
        let task: CallTask
        /// The sweeper cancelled it: the call answers TIMEOUT however it ends.
        var expired = false
    }

    private struct State {
        var running: [UInt64: Running] = [:]
        var nextID: UInt64 = 0
        var sweeping = false
    }

    let timeout: Duration
    private let interval: Duration
    private let state = Locked(State())

    init(timeout: Duration) {
        self.timeout = timeout
        // Late by at most a quarter of the timeout (or 250 ms), never checking more than every 5 ms.
        self.interval = max(min(timeout / 4, .milliseconds(250)), .milliseconds(5))
    }

    /// Runs `operation` in the current task; when it outlives the timeout the task is cancelled,
    /// and unless the operation still succeeds the result is a `TIMEOUT` failure. A success
    /// stands even when late: a write that committed is never reported as `TIMEOUT` (SPEC §11),
    /// or the client would retry it and write twice.
    func run<T>(_ operation: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + self.timeout
        let id = withUnsafeCurrentTask { task in self.register(CallTask(task), deadline: deadline) }
        let result: Result<T, any Error>
        do { result = .success(try await operation()) } catch { result = .failure(error) }
        if self.finish(id), case .failure = result {
            throw FlowError(.timeout, "The endpoint did not answer within \(self.timeout.readable)")
        }
        return try result.get()
    }

    /// Registers the running call; starts the sweeper if none is running.
    private func register(_ task: CallTask, deadline: ContinuousClock.Instant) -> UInt64 {
        let (id, startSweeper) = self.state.withLock { state in
            let id = state.nextID
            state.nextID &+= 1
            state.running[id] = Running(deadline: deadline, task: task)
            defer { state.sweeping = true }
            return (id, !state.sweeping)
        }
        if startSweeper {
            Task { [weak self] in await self?.sweep() }
        }
        return id
    }

    /// Unregisters the call (before its task can end, so the sweeper never touches a finished
    /// task); returns whether it timed out.
    private func finish(_ id: UInt64) -> Bool {
        self.state.withLock { $0.running.removeValue(forKey: id)?.expired ?? false }
    }

    private func sweep() async {
        while true {
            try? await Task.sleep(for: self.interval)
            let now = ContinuousClock.now
            let done = self.state.withLock { state -> Bool in
                for (id, call) in state.running where call.deadline <= now && !call.expired {
                    state.running[id]?.expired = true
                    call.task.cancel()
                }
                if state.running.isEmpty { state.sweeping = false }
                return state.running.isEmpty
            }
            if done { return }
        }
    }
}

extension Duration {
    /// The duration in whole milliseconds.
    public var wholeMilliseconds: Int64 {
        self.components.seconds * 1000 + self.components.attoseconds / 1_000_000_000_000_000
    }

    /// "5 s" or "250 ms", for messages.
    public var readable: String {
        let milliseconds = self.wholeMilliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }
}

/// The task running a call, kept so the sweeper can cancel it.
///
/// `UnsafeCurrentTask` is not Sendable because it must not outlive its task. It is safe here:
/// the entry holding it is removed, under the same lock the sweeper cancels under, before the
/// call returns — so the task is alive whenever `cancel` runs.
private struct CallTask: @unchecked Sendable {
    let task: UnsafeCurrentTask?

    init(_ task: UnsafeCurrentTask?) { self.task = task }

    func cancel() { self.task?.cancel() }
}
