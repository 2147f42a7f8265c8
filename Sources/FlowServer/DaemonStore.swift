public import FlowCore
import FlowPostgres
import FlowProtocol
import FlowStore
import Foundation
public import Logging
public import ServiceLifecycle

/// The store the configuration names (SPEC §12): the PostgreSQL database of `store`, migrated,
/// with its connection pool running; or, without `store`, the SQLite file in `data`.
public struct DaemonStore: Sendable {
    public let store: any GatewayStore
    /// The SQLite store, when that is the one (backup and restore work on its file).
    let sqlite: SQLiteStore?
    /// The PostgreSQL pool's lifetime; nil for SQLite.
    let pool: StorePool?

    /// How long a start waits for PostgreSQL to answer before it gives up.
    static let connectLimit: Duration = .seconds(30)

    /// Opens the store; on PostgreSQL the pool starts now (the caller ends it with ``close()``,
    /// or by running ``service`` in its service group) and the schema is brought up to date.
    public static func open(_ configuration: GatewayConfiguration, metrics: GatewayMetrics = .disabled, logger: Logger) async throws -> DaemonStore {
        guard let url = configuration.store else {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            let sqlite = try SQLiteStore(path: Gateway.databasePath(dataDirectory: configuration.dataDirectory), metrics: metrics)
            return DaemonStore(store: sqlite, sqlite: sqlite, pool: nil)
        }
        let postgres: PostgresStore
        do {
            postgres = try PostgresStore(url: url, maxConnections: configuration.storeMaxConnections, logger: logger)
        } catch {
            throw ConfigurationError(key: "store", message: error.message)
        }
        let pool = StorePool(postgres)
        do {
            let applied = try await Self.withinConnectLimit { try await postgres.migrate() }
            if !applied.isEmpty { logger.notice("store migrated", metadata: ["flow.store.migrations": "\(applied)"]) }
        } catch {
            await pool.stop()
            throw StoreUnavailable(detail: String(describing: error))
        }
        return DaemonStore(store: postgres, sqlite: nil, pool: pool)
    }

    /// What runs the store's connections for as long as the daemon runs (first in the service
    /// group: it stops after everything that uses it); nil when there is nothing to run.
    public var service: (any Service)? { self.pool }

    /// Ends the pool (for a command that opened the store and is done with it).
    public func close() async {
        await self.pool?.stop()
    }

    private static func withinConnectLimit<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: Self.connectLimit)
                return nil
            }
            defer { group.cancelAll() }
            guard let result = try await group.next(), let value = result else {
                throw StoreUnavailable(detail: "no answer within \(Self.connectLimit)")
            }
            return value
        }
    }
}

/// The store could not be reached at start.
public struct StoreUnavailable: Error, CustomStringConvertible {
    let detail: String
    public var description: String { "cannot reach the store (configuration key 'store'): \(self.detail)" }
}

/// Runs a PostgreSQL connection pool from its creation until ``stop()``, or until the service
/// group that runs it shuts down.
final class StorePool: Service, Sendable {
    private let task: Task<Void, Never>

    init(_ store: PostgresStore) {
        self.task = Task { await store.run() }
    }

    func run() async throws {
        // Until the group shuts down (or is cancelled), then the pool goes too.
        try? await gracefulShutdown()
        await self.stop()
    }

    /// Cancels the pool and waits for it to close its connections, for ten seconds at most (a
    /// shutdown must end even if a connection does not).
    func stop() async {
        self.task.cancel()
        let task = self.task
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await task.value }
            group.addTask { try? await Task.sleep(for: .seconds(10)) }
            await group.next()
            group.cancelAll()
        }
    }
}
