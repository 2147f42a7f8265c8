public import FlowCore
import Logging
import PostgresNIO

/// The node directory (SPEC §12): one row per running daemon, its heartbeat set by the
/// database's clock.
extension PostgresStore: NodeDirectory {
    static let nodeDirectoryMigration: [String] = [
        "CREATE TABLE flowgate_node (id text PRIMARY KEY, url text NOT NULL, heartbeat timestamptz NOT NULL)"
    ]

    /// How long a node that stopped heartbeating stays in the table (for whoever looks at it).
    static let deadNodeKept = "1 hour"

    public func heartbeat(node: String, url: String, liveWithin: Duration) async throws -> [ClusterPeer] {
        try await self.guarded {
            try await self.client.withConnection { connection in
                try await connection.query(
                    """
                    INSERT INTO flowgate_node (id, url, heartbeat) VALUES (\(node), \(url), now())
                    ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, heartbeat = EXCLUDED.heartbeat
                    """,
                    logger: self.logger
                )
                try await connection.query(
                    "DELETE FROM flowgate_node WHERE heartbeat < now() - \(Self.deadNodeKept)::interval", logger: self.logger
                )
                return try await Self.liveNodes(connection, within: liveWithin, logger: self.logger)
            }
        }
    }

    public func liveNodes(within liveWithin: Duration) async throws -> [ClusterPeer] {
        try await self.guarded {
            try await self.client.withConnection { connection in
                try await Self.liveNodes(connection, within: liveWithin, logger: self.logger)
            }
        }
    }

    public func leave(node: String) async throws {
        try await self.guarded {
            try await self.client.query("DELETE FROM flowgate_node WHERE id = \(node)", logger: self.logger)
        }
    }

    static func liveNodes(_ connection: PostgresConnection, within liveWithin: Duration, logger: Logger) async throws -> [ClusterPeer] {
        let seconds = Double(liveWithin.components.seconds) + Double(liveWithin.components.attoseconds) / 1e18
        var peers: [ClusterPeer] = []
        let rows = try await connection.query(
            "SELECT id, url FROM flowgate_node WHERE heartbeat > now() - make_interval(secs => \(seconds)) ORDER BY id", logger: logger
        )
        for try await (id, url) in rows.decode((String, String).self) { peers.append(ClusterPeer(id: id, url: url)) }
        return peers
    }
}
