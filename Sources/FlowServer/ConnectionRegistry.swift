import NIOWebSocket
import Synchronization

/// The open WebSockets: counted against `max_sockets`, and closed together on shutdown.
final class ConnectionRegistry: Sendable {
    typealias Closer = @Sendable (WebSocketErrorCode, String) async -> Void

    private struct State {
        var nextID = 0
        var closers: [Int: Closer] = [:]
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Adds a connection; nil when the limit is reached.
    func add(_ closer: @escaping Closer) -> Int? {
        self.state.withLock { state in
            guard state.closers.count < self.limit else { return nil }
            state.nextID += 1
            state.closers[state.nextID] = closer
            return state.nextID
        }
    }

    func remove(_ id: Int) {
        _ = self.state.withLock { $0.closers.removeValue(forKey: id) }
    }

    /// Open WebSockets right now.
    var count: Int { self.state.withLock { $0.closers.count } }

    /// Sends every open socket a close frame with `code`.
    func closeAll(code: WebSocketErrorCode, reason: String) async {
        let closers = self.state.withLock { Array($0.closers.values) }
        await withDiscardingTaskGroup { group in
            for closer in closers {
                group.addTask { await closer(code, reason) }
            }
        }
    }
}
