public import FlowProtocol

/// Another daemon sharing the store (SPEC §12), as the node directory shows it.
public struct ClusterPeer: Sendable, Hashable {
    /// Random, new at every start of the daemon.
    public let id: String
    /// Where the other nodes reach its WebSocket endpoint, e.g. `ws://10.0.0.5:8080`.
    public let url: String

    public init(id: String, url: String) {
        self.id = id
        self.url = url
    }
}

/// The nodes sharing a store, each with its last heartbeat (SPEC §12): how a node learns which
/// others are alive and where they are. The store's clock decides, so the nodes' clocks need
/// not agree.
public protocol NodeDirectory: Sendable {
    /// Records that `node`, reached at `url`, is alive now; answers every node whose last
    /// heartbeat is at most `liveWithin` old, this one included. Rows long dead are removed.
    func heartbeat(node: String, url: String, liveWithin: Duration) async throws -> [ClusterPeer]
    /// The nodes whose last heartbeat is at most `liveWithin` old.
    func liveNodes(within liveWithin: Duration) async throws -> [ClusterPeer]
    /// Removes `node` (it is shutting down).
    func leave(node: String) async throws
}
