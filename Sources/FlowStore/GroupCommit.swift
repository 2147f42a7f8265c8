import FlowCore
import FlowProtocol
import GRDB

/// Group commit for collection writes: the writes that arrive while a transaction is being
/// committed go together in the next one, each in its own savepoint, so they share one
/// BEGIN/COMMIT and one append to the WAL. Each is answered only after the commit that carries
/// it (SPEC §7.4 unchanged); one that fails (`ALREADY_EXISTS`, `CONFLICT`) rolls back its
/// savepoint alone. A write that finds the writer idle starts at once: nothing waits for company.
///
/// Groups run on the database writer's queue, one `asyncWriteWithoutTransaction` each, so other
/// writes (auth, pruning, restore) still interleave between them.
final class GroupCommit: Sendable {
    private let writer: any DatabaseWriter
    private let metrics: GatewayMetrics
    private let state = Locked(State())

    /// The most writes one transaction carries; the rest go in the next.
    static let maxGroup = 256

    private struct State {
        var pending: [any GroupedWrite] = []
        /// A group is scheduled or running on the writer's queue.
        var running = false
    }

    init(writer: any DatabaseWriter, metrics: GatewayMetrics) {
        self.writer = writer
        self.metrics = metrics
    }

    /// Runs `updates` in a savepoint of the next group's transaction and returns once that
    /// transaction has committed.
    func write<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let request = Request(updates: updates, continuation: continuation)
            let start = self.state.withLock { state in
                state.pending.append(request)
                guard !state.running else { return false }
                state.running = true
                return true
            }
            if start { self.schedule() }
        }
    }

    private func schedule() {
        self.writer.asyncWriteWithoutTransaction { db in self.commitGroup(db) }
    }

    /// Takes what is pending (up to ``maxGroup``), runs it in one transaction, answers each write,
    /// and schedules the next group if more arrived meanwhile.
    private func commitGroup(_ db: Database) {
        let group = self.state.withLock { state in
            let group = Array(state.pending.prefix(Self.maxGroup))
            state.pending.removeFirst(group.count)
            return group
        }
        var failure: (any Error)?
        do {
            try db.inTransaction(.immediate) {
                for request in group {
                    // An error that ended the transaction itself (disk full, I/O) leaves no
                    // savepoint to roll back to: the rest of the group fails with it.
                    guard db.isInsideTransaction else { throw FlowError(.internalError, "The write transaction ended early") }
                    request.run(db)
                }
                return .commit
            }
        } catch {
            failure = error
        }
        self.metrics.storeCommit()
        for request in group { request.finish(failure) }
        let more = self.state.withLock { state in
            state.running = !state.pending.isEmpty
            return state.running
        }
        if more { self.schedule() }
    }
}

/// One write in a group, type-erased.
private protocol GroupedWrite: AnyObject, Sendable {
    /// Runs the write in a savepoint, keeping its result or its error.
    func run(_ db: Database)
    /// Answers the caller: its own result if the group committed, else the group's error.
    func finish(_ groupFailure: (any Error)?)
}

/// Touched only on the writer's queue (run) and then once (finish), in that order.
private final class Request<T: Sendable>: GroupedWrite, @unchecked Sendable {
    let updates: @Sendable (Database) throws -> T
    let continuation: CheckedContinuation<T, any Error>
    var result: Result<T, any Error>?

    init(updates: @escaping @Sendable (Database) throws -> T, continuation: CheckedContinuation<T, any Error>) {
        self.updates = updates
        self.continuation = continuation
    }

    func run(_ db: Database) {
        do {
            var value: T?
            try db.inSavepoint {
                value = try self.updates(db)
                return .commit
            }
            self.result = value.map { .success($0) }
        } catch {
            self.result = .failure(error)
        }
    }

    func finish(_ groupFailure: (any Error)?) {
        switch (self.result, groupFailure) {
        case (.failure(let error)?, _): self.continuation.resume(throwing: error)
        case (_, let failure?): self.continuation.resume(throwing: failure)
        case (.success(let value)?, nil): self.continuation.resume(returning: value)
        case (nil, nil): self.continuation.resume(throwing: FlowError(.internalError, "A grouped write did not run"))
        }
    }
}
