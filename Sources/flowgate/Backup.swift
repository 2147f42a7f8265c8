import ArgumentParser
import FlowServer
import FlowStore
import Foundation

/// `flowgate backup <file>`: a consistent snapshot of the database, taken while the daemon runs
/// and writes go on (SPEC §10). The same file `RUN system/backup snapshot` answers with.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a consistent snapshot of the database to a file, online.")
    @Argument(help: "The snapshot file to write (replaced only once the snapshot is complete).") var file: String
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let configuration = try self.database.configuration()
        try DatabaseOptions.requireSQLite(configuration)
        let path = Gateway.databasePath(dataDirectory: configuration.dataDirectory)
        guard FileManager.default.fileExists(atPath: path) else {
            FileHandle.standardError.write(Data("error: no database at \(path)\n".utf8))
            throw ExitCode(1)
        }
        let store = try self.database.openSQLite(configuration)
        try await store.backup(to: self.file)
        let summary = try SQLiteStore.checkSnapshot(at: self.file)
        print("snapshot written to \(self.file): \(summary.objects) objects, \(summary.users) users, \(summary.tokens) tokens")
    }
}

/// `flowgate restore <file>`: replaces the database's contents with a snapshot, after checking
/// it, keeping the current database beside it (SPEC §10). Meant for a stopped daemon; a running
/// one restores with `RUN system/backup restore`, which also ends its watches and reloads users.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace the database with a snapshot (daemon stopped); the current one is kept as flowgate.sqlite.before-restore-<time>."
    )
    @Argument(help: "A snapshot made by flowgate backup or RUN system/backup snapshot.") var file: String
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let configuration = try self.database.configuration()
        try DatabaseOptions.requireSQLite(configuration)
        // Checked before the database is even opened: a bad file changes nothing.
        _ = try await reportingFailure { try SQLiteStore.checkSnapshot(at: self.file) }
        let store = try self.database.openSQLite(configuration)
        let previous = Gateway.previousDatabasePath(dataDirectory: configuration.dataDirectory)
        let result = try await reportingFailure {
            try await store.restore(
                from: self.file, keepingPreviousAt: previous,
                scratch: GatewayConfiguration.scratchDirectory(dataDirectory: configuration.dataDirectory)
            )
        }
        print(
            "restored \(result.summary.objects) objects, \(result.summary.users) users, \(result.summary.tokens) tokens;"
                + " the previous database is kept as \(result.previous)"
        )
    }
}
