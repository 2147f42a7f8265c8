import Foundation
import GRDB
import Synchronization

/// Read-only connections to the database file, in two groups (SPEC §11: no read blocks the
/// threads that serve other connections, and a read past its call's deadline is interrupted).
///
/// - **Point reads** (an object by its key, the auth version) cost microseconds whatever the
///   data: they run on the calling thread, which is cheaper than any hop, on connections that
///   nothing slow ever holds, so they never wait for long.
/// - **Scans** (LIST: counts, filters, sorts, full-text search) cost what the collection's size
///   makes them: they run on their connections' own dispatch queues, off the cooperative pool,
///   and a cancelled task interrupts its statement (GRDB's async reads), so the call's deadline
///   bounds them.
///
/// In WAL mode each statement reads the last committed state, so a read on any connection sees
/// every write that has returned.
final class ReadConnections: Sendable {
    private let points: [DatabaseQueue]
    private let scans: [DatabaseQueue]
    private let next = Atomic<UInt>(0)

    init(path: String, points: Int, scans: Int) throws {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        self.points = try (0..<points).map { _ in try DatabaseQueue(path: path, configuration: configuration) }
        self.scans = try (0..<scans).map { _ in try DatabaseQueue(path: path, configuration: configuration) }
    }

    private func pick(_ queues: [DatabaseQueue]) -> DatabaseQueue {
        queues[Int(self.next.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(queues.count))]
    }

    /// Runs a point read on the calling thread, inside a read transaction or not.
    func read<T>(transaction: Bool, _ body: (Database) throws -> T) throws -> T {
        let queue = self.pick(self.points)
        return transaction ? try queue.read(body) : try queue.unsafeRead(body)
    }

    /// Runs a scan in a read transaction on a scan connection's queue; cancelling the task
    /// interrupts it (`CancellationError`).
    func scan<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await self.pick(self.scans).read(body)
    }
}
