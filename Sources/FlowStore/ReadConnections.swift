import Foundation
import GRDB
import Synchronization

/// A few read-only connections to the database file, taken in turn.
///
/// In WAL mode each statement reads the last committed state, so a read on any of them sees
/// every write that has returned. Each connection is a `DatabaseQueue`: a read waits only if
/// another read holds the same connection.
final class ReadConnections: Sendable {
    private let queues: [DatabaseQueue]
    private let next = Atomic<UInt>(0)

    init(path: String, count: Int) throws {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        self.queues = try (0..<count).map { _ in try DatabaseQueue(path: path, configuration: configuration) }
    }

    /// Runs `body` on the next connection, inside a read transaction or not.
    func read<T>(transaction: Bool, _ body: (Database) throws -> T) throws -> T {
        let index = Int(self.next.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(self.queues.count))
        let queue = self.queues[index]
        return transaction ? try queue.read(body) : try queue.unsafeRead(body)
    }
}
