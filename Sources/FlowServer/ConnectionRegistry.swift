import FlowCore
import NIOWebSocket
import FlowProtocol

/// The open WebSockets: counted against `max_sockets`, closed together on shutdown, and closed
/// with 4001 when the credential they were opened with is revoked (SPEC §5.3).
final class ConnectionRegistry: Sendable {
    typealias Closer = @Sendable (WebSocketErrorCode, String) async -> Void

    private struct Entry {
        let closer: Closer
        /// The upgrade request's credential.
        let credential: Credential?
        /// Whether the credential has been good: only then does its revocation close the
        /// socket. One that is no good at the upgrade is not "the socket's" (its frames fail on
        /// their own) until it turns good: made a moment ago through another node, this node
        /// learns of it with the first frame (SPEC §12).
        var watched: Bool
        /// `websocket` or `sse`, for the open-connections gauge.
        let transport: Transport
    }

    private struct State {
        var nextID = 0
        var entries: [Int: Entry] = [:]
    }

    private let state = Locked(State())
    let limit: Int
    /// Who says whether a credential was revoked; nil when credentials never are.
    let credentials: (any RevocableCredentials)?
    let metrics: GatewayMetrics

    init(limit: Int, credentials: (any RevocableCredentials)? = nil, metrics: GatewayMetrics = .disabled) {
        self.limit = limit
        self.credentials = credentials
        self.metrics = metrics
    }

    /// Adds a connection opened with `credential`; nil when the limit is reached.
    func add(_ transport: Transport, credential: Credential? = nil, _ closer: @escaping Closer) -> Int? {
        let watched = credential.map { credential in self.credentials?.isRevoked(credential) == false } ?? false
        let id: Int? = self.state.withLock { state in
            guard state.entries.count < self.limit else { return nil }
            state.nextID += 1
            state.entries[state.nextID] = Entry(closer: closer, credential: credential, watched: watched, transport: transport)
            return state.nextID
        }
        if id != nil { self.metrics.connection(transport, opened: true) }
        return id
    }

    func remove(_ id: Int) {
        guard let entry = self.state.withLock({ $0.entries.removeValue(forKey: id) }) else { return }
        self.metrics.connection(entry.transport, opened: false)
    }

    /// Open WebSockets right now.
    var count: Int { self.state.withLock { $0.entries.count } }

    /// Sends every open socket a close frame with `code`.
    func closeAll(code: WebSocketErrorCode, reason: String) async {
        await Self.close(self.state.withLock { $0.entries.values.map(\.closer) }, code: code, reason: reason)
    }

    /// Closes with 4001 every socket whose credential was revoked, and forgets them.
    func closeRevoked() async {
        guard let credentials = self.credentials else { return }
        let revoked = self.state.withLock { state -> [Entry] in
            var revoked: [Entry] = []
            for (id, entry) in state.entries {
                guard let credential = entry.credential else { continue }
                let good = !credentials.isRevoked(credential)
                if entry.watched, !good {
                    revoked.append(entry)
                    state.entries[id] = nil
                } else if !entry.watched, good {
                    state.entries[id]?.watched = true
                }
            }
            return revoked
        }
        guard !revoked.isEmpty else { return }
        for entry in revoked { self.metrics.connection(entry.transport, opened: false) }
        await Self.close(revoked.map(\.closer), code: .init(codeNumber: 4001), reason: "Credential revoked or expired")
    }

    private static func close(_ closers: [Closer], code: WebSocketErrorCode, reason: String) async {
        await withDiscardingTaskGroup { group in
            for closer in closers {
                group.addTask { await closer(code, reason) }
            }
        }
    }
}
