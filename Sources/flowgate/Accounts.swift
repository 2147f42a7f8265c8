import ArgumentParser
import FlowAuth
import FlowCore
import FlowProtocol
import FlowServer
import FlowStore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Options shared by the commands that change users and tokens in the database directly, even
/// while the daemon runs (it picks the change up within a second, SPEC §9.6).
struct DatabaseOptions: ParsableArguments {
    @Option(help: "Data directory (default ./data, or FLOWGATE_DATA).") var data: String?
    @Option(help: "PostgreSQL database the nodes share (or FLOWGATE_STORE); default: the SQLite file in --data.") var store: String?
    @Option(help: "JSON config file (or FLOWGATE_CONFIG).") var config: String?

    /// The configuration as the daemon would read it (flags > environment > file).
    func configuration() throws -> GatewayConfiguration {
        let environment = ProcessInfo.processInfo.environment
        var flags: [String: String] = [:]
        flags["data"] = self.data
        flags["store"] = self.store
        return try GatewayConfiguration.load(
            flags: flags, environment: environment,
            file: try self.config.map(Serve.readConfigFile) ?? environment["FLOWGATE_CONFIG"].map(Serve.readConfigFile)
        )
    }

    /// The daemon's SQLite database, created (and migrated) if it is not there yet; backup and
    /// restore work on it alone (PostgreSQL has pg_dump).
    func openSQLite(_ configuration: GatewayConfiguration) throws -> SQLiteStore {
        try Self.requireSQLite(configuration)
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        return try SQLiteStore(path: Gateway.databasePath(dataDirectory: configuration.dataDirectory))
    }

    /// Refuses a configuration whose store is PostgreSQL.
    static func requireSQLite(_ configuration: GatewayConfiguration) throws {
        guard configuration.store == nil else {
            throw ValidationError("the store is PostgreSQL (configuration key 'store'): back it up and restore it with pg_dump and pg_restore")
        }
    }

    /// Runs `body` with the auth service over the daemon's store (the SQLite file, or the
    /// PostgreSQL database), with the built-in roles present.
    func withAuth<T>(_ body: (AuthService) async throws -> T) async throws -> T {
        let configuration = try self.configuration()
        var logger = Logger(label: "flowgate", factory: { EscapingLogHandler(StreamLogHandler.standardError(label: $0)) })  // stdout carries the results
        logger.logLevel = .notice
        let opened = try await DaemonStore.open(configuration, logger: logger)
        do {
            let auth = AuthService(store: opened.store, configuration: configuration.auth, logger: logger)
            try await auth.ensureBuiltinRoles()
            let result = try await body(auth)
            await opened.close()
            return result
        } catch {
            await opened.close()
            throw error
        }
    }
}

/// `flowgate user add|passwd`.
struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add users and set passwords.", subcommands: [Add.self, Passwd.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user.")
        @Argument(help: "User name.") var username: String
        @Option(name: .customLong("role"), help: "A role (repeatable), e.g. admin or reader.") var roles: [String] = []
        @Flag(help: "Read the password from the first line of standard input.") var passwordStdin = false
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let password = try readPassword(fromStdin: self.passwordStdin)
            try await self.database.withAuth { auth in
                try await reportingFailure { _ = try await auth.createUser(username: self.username, password: password, roles: self.roles) }
            }
            print("user \(self.username) added")
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password (their sessions end).")
        @Argument(help: "User name.") var username: String
        @Flag(help: "Read the password from the first line of standard input.") var passwordStdin = false
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let password = try readPassword(fromStdin: self.passwordStdin)
            try await self.database.withAuth { auth in
                try await reportingFailure { try await auth.setPassword(username: self.username, password: password) }
            }
            print("password of \(self.username) changed")
        }
    }
}

/// `flowgate token create|revoke`.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create and revoke personal access tokens.", subcommands: [Create.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a personal access token for a user; prints its value (shown only now) on standard output."
        )
        @Argument(help: "The user the token acts as.") var username: String
        @Option(help: "A name to recognise the token by.") var name = "cli"
        @Option(name: .customLong("scope"), help: "Narrow the token to this scope (repeatable), e.g. 'inventory/*:LIST,OPEN'.") var scopes: [String] = []
        @Option(help: "Expiry as an RFC 3339 time, e.g. 2030-01-31T00:00:00Z (default: never).") var expires: String?
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            var expiry: Double?
            if let expires = self.expires {
                guard let date = try? Date.ISO8601FormatStyle().parse(expires) else { throw ValidationError("--expires must be an RFC 3339 time") }
                expiry = date.timeIntervalSince1970
            }
            let token = try await self.database.withAuth { auth in
                try await reportingFailure {
                    try await auth.createToken(username: self.username, name: self.name, expires: expiry, scopes: self.scopes.isEmpty ? nil : self.scopes)
                }
            }
            FileHandle.standardError.write(Data("token id \(token.record.id) (revoke with: flowgate token revoke \(token.record.id))\n".utf8))
            print(token.value)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id; a running daemon refuses it within a second.")
        @Argument(help: "The token's id (from auth/tokens LIST or token create).") var id: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let token = try await self.database.withAuth { auth in
                try await reportingFailure { try await auth.revokeToken(id: self.id, by: nil) }
            }
            print("token \(token.id) of \(token.username) revoked")
        }
    }
}

/// Runs `body`; a ``FlowError`` becomes a one-line message and exit code 1.
func reportingFailure<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as FlowError {
        var message = "error: \(error.message)"
        if case .object(let detail)? = error.data, case .array(let problems)? = detail["errors"] {
            message += problems.map { "\n  \($0["path"]?.stringValue ?? ""): \($0["message"]?.stringValue ?? "")" }.joined()
        }
        FileHandle.standardError.write(Data((message + "\n").utf8))
        throw ExitCode(1)
    }
}

/// The password from standard input's first line, or typed twice at the terminal without echo.
private func readPassword(fromStdin: Bool) throws -> String {
    if fromStdin {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw ValidationError("no password on standard input") }
        return line
    }
    guard isatty(STDIN_FILENO) != 0, let first = getpass("Password: ").map({ String(cString: $0) }),
        let second = getpass("Again: ").map({ String(cString: $0) })
    else {
        throw ValidationError("standard input is not a terminal: pass the password with --password-stdin")
    }
    guard first == second else { throw ValidationError("the passwords differ") }
    return first
}
