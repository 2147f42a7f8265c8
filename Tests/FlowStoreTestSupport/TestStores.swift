public import FlowCore
import FlowProtocol
public import FlowPostgres
public import FlowStore
import Foundation
public import Logging
public import PostgresNIO

/// The stores the store and gateway tests run against (SPEC §12: every rule holds on both).
public enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres

    public var description: String { self.rawValue }

    /// Runs `body` with a new, empty, migrated store of this kind, removed afterwards: a
    /// database file in a temporary folder, or a schema of its own on the test server.
    public func withStore<T: Sendable>(_ body: @escaping @Sendable (any TestStore) async throws -> T) async throws -> T {
        try await self.withStores(1) { stores in try await body(stores[0]) }
    }

    /// Runs `body` with `count` stores on one new, empty database, as `count` processes (nodes)
    /// sharing it have: SQLite stores on one file, PostgreSQL stores with pools of their own.
    public func withStores<T: Sendable>(_ count: Int, _ body: @escaping @Sendable ([any TestStore]) async throws -> T) async throws -> T {
        switch self {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let path = folder.appendingPathComponent("flowgate.sqlite").path
            return try await body(try (0..<count).map { _ in try SQLiteStore(path: path) })
        case .postgres:
            return try await TestDatabase.with { url in
                try await TestDatabase.withStores(url, count) { stores in
                    try await stores[0].migrate()
                    return try await body(stores)
                }
            }
        }
    }
}

extension StoreKind {
    /// Runs `body` with the environment that puts a daemon on a new, empty store of this kind:
    /// none for SQLite (its file is in the daemon's data folder), `FLOWGATE_STORE` naming a
    /// schema of its own on the test server for PostgreSQL (dropped afterwards).
    public func withDaemonEnvironment<T>(_ body: ([String: String]) async throws -> T) async throws -> T {
        switch self {
        case .sqlite: return try await body([:])
        case .postgres: return try await TestDatabase.with { url in try await body(["FLOWGATE_STORE": url]) }
        }
    }
}

/// What the store tests need of a store; both stores are all of it.
public typealias TestStore = CollectionStore & ChangeLog & AuthStore

/// A database of its own for one test, on the server `FLOWGATE_TEST_POSTGRES` names.
public enum TestDatabase {
    public static var serverURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["FLOWGATE_TEST_POSTGRES"], !url.isEmpty else {
                throw TestSetupError(
                    "FLOWGATE_TEST_POSTGRES is not set: run the tests through scripts/with-postgres (the README's test command does), e.g. scripts/with-postgres swift test"
                )
            }
            return url
        }
    }

    public static var logger: Logger {
        var logger = Logger(label: "flowgate.test.postgres")
        logger.logLevel = .warning
        return logger
    }

    /// Runs `body` with the URL of a new, empty database of its own, dropped afterwards: a
    /// schema on the test server's database, which the URL's `options` make every connection's
    /// `search_path` (a schema costs nothing to make; a database copies its template, and dozens
    /// of tests making them at once starved the machine).
    public static func with<T>(_ body: (String) async throws -> T) async throws -> T {
        let server = try Self.serverURL
        let name = "flowgate_test_\(UInt64.random(in: 0...UInt64.max))"
        try await Self.admin(server, "CREATE SCHEMA \(name)")
        var components = URLComponents(string: server)!
        components.queryItems = [URLQueryItem(name: "options", value: "-c search_path=\(name)")]
        do {
            let result = try await body(components.string!)
            try await Self.drop(name, on: server)
            return result
        } catch {
            try? await Self.drop(name, on: server)
            throw error
        }
    }

    public static func drop(_ name: String, on server: String) async throws {
        try await Self.admin(server, "DROP SCHEMA IF EXISTS \(name) CASCADE")
    }

    /// Runs one statement on the database `url` names, on a connection of its own (no pool,
    /// so nothing waits for a pool to wind down), closed afterwards.
    public static func admin(_ url: String, _ sql: String) async throws {
        let configuration = try PostgresStore.connectionConfiguration(url)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: Self.logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Self.logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// Runs `body` with a plain postgres-nio client on `url`, running meanwhile.
    public static func withClient<T: Sendable>(_ url: String, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let configuration = try PostgresStore.clientConfiguration(url, maxConnections: 8)
        let client = PostgresClient(configuration: configuration, backgroundLogger: Self.logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Runs `body` with a store on `url` whose pool runs meanwhile.
    public static func withStore<T: Sendable>(_ url: String, _ body: @escaping @Sendable (PostgresStore) async throws -> T) async throws -> T {
        try await Self.withStores(url, 1) { stores in try await body(stores[0]) }
    }

    /// Runs `body` with `count` stores on `url`, each with its own pool, running meanwhile.
    public static func withStores<T: Sendable>(_ url: String, _ count: Int, _ body: @escaping @Sendable ([PostgresStore]) async throws -> T) async throws -> T {
        let stores = try (0..<count).map { _ in try PostgresStore(url: url, maxConnections: 8, logger: Self.logger) }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            for store in stores {
                group.addTask {
                    await store.run()
                    return nil
                }
            }
            defer { group.cancelAll() }
            return try await body(stores)
        }
    }

    public static func withMigratedStore(_ body: @escaping @Sendable (PostgresStore) async throws -> Void) async throws {
        try await Self.with { url in
            try await Self.withStore(url) { store in
                try await store.migrate()
                try await body(store)
            }
        }
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
