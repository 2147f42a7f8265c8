import FlowProtocol
import Synchronization

/// "Something changed" for any number of watchers: each runs its body once per signal it has
/// not handled yet (signals arriving while the body runs are folded into one more run).
public final class ChangeSignal: Sendable {
    private let watchers = Locked<[Int: AsyncStream<Void>.Continuation]>([:])
    private let nextWatcher = Atomic<Int>(0)

    public init() {}

    /// Tells every watcher.
    public func signal() {
        for continuation in self.watchers.withLock({ Array($0.values) }) { continuation.yield() }
    }

    /// Runs `body` after every signal until the task is cancelled.
    public func watch(_ body: @Sendable () async -> Void) async {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = self.nextWatcher.add(1, ordering: .relaxed).newValue
        self.watchers.withLock { $0[id] = continuation }
        defer { _ = self.watchers.withLock { $0.removeValue(forKey: id) } }
        await withTaskCancellationHandler {
            for await _ in stream { await body() }
        } onCancel: {
            continuation.finish()
        }
    }
}
