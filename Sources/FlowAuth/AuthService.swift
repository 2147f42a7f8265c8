public import FlowCore
public import FlowProtocol
import Foundation
public import Logging
import Synchronization

/// Settings of authentication (SPEC §9, §11).
public struct AuthConfiguration: Sendable, Equatable {
    /// How long a session token lives.
    public var sessionLifetime: Duration = .seconds(12 * 3600)
    /// bcrypt's cost for new password hashes (log2 of the rounds).
    public var bcryptCost = 12
    /// How long a verified Basic credential is trusted without hashing the password again.
    public var basicCacheLifetime: Duration = .seconds(30)
    /// Failed logins allowed per user name and per client address per minute.
    public var loginFailuresPerMinute = 10
    /// Password hashes (bcrypt) running at once, across all callers; more wait briefly in line
    /// (up to eight times as many, for at most `passwordHashWait`), then get `RATE_LIMITED`.
    public var maxPasswordHashes = max(2, ProcessInfo.processInfo.activeProcessorCount)
    /// How long a password check may wait for a free hash slot.
    public var passwordHashWait: Duration = .seconds(1)
    /// Scopes one token or role may list.
    public var maxScopes = 64
    /// Personal access tokens one user may hold (more is `RATE_LIMITED`).
    public var maxTokensPerUser = 100
    /// Sessions one user may hold; a new sign-in past it ends the oldest.
    public var maxSessionsPerUser = 100
    /// The longest a personal access token made over the API may live (SPEC §9.2); nil for no
    /// limit. A token asked for without `expires` gets this lifetime.
    public var tokenMaxLifetime: Duration? = .seconds(365 * 86_400)
    /// How often the store is checked for changes made by another process (SPEC §9.6: within 1 s).
    public var refreshInterval: Duration = .milliseconds(250)
    /// How often expired tokens are deleted.
    public var purgeInterval: Duration = .seconds(60)

    public init() {}
}

/// Users, tokens, roles and scopes (SPEC §9): authenticates every call from an in-memory
/// ``AuthDirectory`` rebuilt on each change, verifies passwords with bcrypt (rate-limited), caches
/// verified Basic credentials, and makes every change through the ``AuthStore`` so that the
/// daemon and the `flowgate user|token` commands agree.
///
/// ```swift
/// let auth = AuthService(store: store, logger: logger)
/// if let password = try await auth.bootstrap(adminPassword: nil) { print(password) }
/// let dispatcher = Dispatcher(registry: registry, authenticator: auth, policy: ScopePolicy(), logger: logger)
/// ```
public final class AuthService: Authenticator, RevocableCredentials {
    let store: any AuthStore
    public let configuration: AuthConfiguration
    let logger: Logger
    let now: @Sendable () -> Double
    private let directory: Locked<AuthDirectory>
    private let basicCache = Locked<[[UInt8]: BasicEntry]>([:])
    /// Passwords checked with bcrypt so far (tests; later a metric).
    let passwordChecks = Atomic<Int>(0)
    /// Basic verifications running now, by cache key (see `authenticateBasic`).
    private let pendingBasic = Locked<[[UInt8]: Task<AuthDirectory.User, any Error>]>([:])
    /// The reload a credential this node does not know is waiting for (see `catchUp`).
    private let catchingUp = Locked<Task<Void, Never>?>(nil)
    private let limiter: Locked<LoginLimiter>
    /// The global cap on password hashes at once (SPEC §11).
    let hashes: HashGate
    let metrics: GatewayMetrics
    private let revocations = ChangeSignal()
    /// A bcrypt hash of nothing anyone knows: an unknown user costs as much time as a wrong password.
    private let decoyHash: String

    struct BasicEntry {
        /// The user's hash when the password was verified: a changed password invalidates the entry.
        let passwordHash: String
        /// When the entry was last verified or used; it lapses `basicCacheLifetime` after.
        var lastUsed: Double
    }

    public init(
        store: any AuthStore, configuration: AuthConfiguration = .init(), metrics: GatewayMetrics = .disabled, logger: Logger,
        now: @escaping @Sendable () -> Double = AuthService.systemTime
    ) {
        self.store = store
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.directory = Locked(AuthDirectory(AuthRecords(version: -1, users: [], roles: [], tokens: [])))
        self.limiter = Locked(LoginLimiter(limit: configuration.loginFailuresPerMinute))
        self.hashes = HashGate(
            limit: configuration.maxPasswordHashes, queueLimit: 8 * configuration.maxPasswordHashes, maxWait: configuration.passwordHashWait,
            metrics: metrics
        )
        let cost = min(max(configuration.bcryptCost, 4), 31)
        self.decoyHash = "$2b$" + (cost < 10 ? "0" : "") + "\(cost)$" + String(repeating: "A", count: 53)
    }

    /// Seconds since 1970, from the system clock.
    public static let systemTime: @Sendable () -> Double = { Date().timeIntervalSince1970 }

    /// The current directory.
    var current: AuthDirectory { self.directory.withLock { $0 } }

    // MARK: Start

    /// The built-in roles (SPEC §9.3).
    public static let builtinRoles = [
        RoleRecord(name: "admin", scopes: ["*:*", "auth/*:*", "system/*:*", "provide:*"], builtin: true),
        RoleRecord(name: "reader", scopes: ["*:LIST,OPEN,INDEX"], builtin: true),
    ]

    /// First start: makes sure the built-in roles exist and, when there is no user at all,
    /// creates `admin` with `adminPassword`, or a random password that is returned (to be shown once).
    public func bootstrap(adminPassword: String?) async throws -> String? {
        try await self.ensureBuiltinRoles()
        if let adminPassword { try Self.checkPassword(adminPassword, path: "admin_password") }
        // Every later start ends here, without paying for a bcrypt hash nobody would use.
        guard self.current.users.isEmpty else { return nil }
        let password = adminPassword ?? Secrets.newToken(prefix: "", length: 24)
        let hash = await Secrets.hashPassword(password, cost: self.configuration.bcryptCost)
        let created = try await self.store.insertFirstUser(UserRecord(username: "admin", passwordHash: hash, roles: ["admin"], created: self.now()))
        try await self.refresh()
        guard created else { return nil }
        self.logger.notice("created the first user", metadata: ["flow.user": "admin"])
        return adminPassword == nil ? password : nil
    }

    /// Creates the built-in roles that are missing, and loads the directory.
    public func ensureBuiltinRoles() async throws {
        for role in Self.builtinRoles {
            do { try await self.store.insertRole(role) } catch let error as FlowError where error.code == .alreadyExists {}
        }
        try await self.refresh()
    }

    // MARK: Changes

    /// Reloads the directory from the store and tells the watchers.
    public func refresh() async throws {
        let records = try await self.store.loadAuth()
        let fresh = AuthDirectory(records)
        self.directory.withLock { current in
            if fresh.version >= current.version { current = fresh }
        }
        self.notifyWatchers()
    }

    /// Reloads when another process (or this one) changed the store since the last load.
    public func refreshIfChanged() async throws {
        let version = try await self.store.authVersion()
        if version != self.current.version { try await self.refresh() }
    }

    /// Reloads the directory if the store changed since it was loaded, one reload at a time for
    /// every caller; true when the directory is newer afterwards. A credential this node does
    /// not know may have been made a moment ago through another node or `flowgate token`
    /// (SPEC §12: behind a load balancer, a token made through one node is used on the next at
    /// once); it is refused only once the store says the same. Costs one read of the version
    /// row, shared by all who wait for it, so unknown credentials cannot multiply the work.
    func catchUp() async -> Bool {
        let before = self.current.version
        let task = self.catchingUp.withLock { running -> Task<Void, Never> in
            if let running { return running }
            let task = Task {
                do {
                    try await self.refreshIfChanged()
                } catch {
                    self.logger.warning("could not read the users and tokens from the store", metadata: ["flow.error": .string(String(describing: error))])
                }
                self.catchingUp.withLock { $0 = nil }
            }
            running = task
            return task
        }
        await task.value
        return self.current.version != before
    }

    /// Deletes expired tokens; returns how many.
    @discardableResult
    public func purgeExpiredTokens() async throws -> Int {
        let purged = try await self.store.purgeTokens(expiredBefore: self.now())
        if purged > 0 {
            self.logger.info("purged expired tokens", metadata: ["flow.tokens": "\(purged)"])
            try await self.refresh()
        }
        return purged
    }

    /// Tells the watchers when a token expired since `since`; returns the time checked.
    func noticeExpiries(since: Double) -> Double {
        let now = self.now()
        if let next = self.current.nextExpiry, next > since, next <= now { self.notifyWatchers() }
        return now
    }

    private func notifyWatchers() {
        self.revocations.signal()
    }

    public func watchRevocations(_ body: @Sendable () async -> Void) async {
        await self.revocations.watch(body)
    }

    public func currentIdentity(_ credential: Credential) -> Identity? {
        guard !self.isRevoked(credential) else { return nil }
        switch credential {
        case .token(let value): return self.current.identity(digest: Secrets.digest(value), now: self.now())
        case .basic(let username, _): return self.current.users[username]?.identity
        }
    }

    public func isRevoked(_ credential: Credential) -> Bool {
        let directory = self.current
        switch credential {
        case .token(let value):
            return directory.identity(digest: Secrets.digest(value), now: self.now()) == nil
        case .basic(let username, let password):
            guard let user = directory.users[username], !user.record.disabled else { return true }
            let entry = self.basicCache.withLock { $0[Self.basicKey(username, password)] }
            return entry.map { $0.passwordHash != user.record.passwordHash } ?? false
        }
    }

    // MARK: Authenticator

    public func authenticate(_ credential: Credential?, origin: CallOrigin) async throws(FlowError) -> Identity? {
        switch credential {
        case nil:
            return nil
        case .token(let value)?:
            let digest = Secrets.digest(value)
            if let identity = self.current.identity(digest: digest, now: self.now()) { return identity }
            guard await self.catchUp(), let identity = self.current.identity(digest: digest, now: self.now()) else {
                throw FlowError(.unauthenticated, "Invalid or expired token")
            }
            return identity
        case .basic(let username, let password)?:
            return try await self.authenticateBasic(username: username, password: password, address: origin.clientAddress)
        }
    }

    private func authenticateBasic(username: String, password: String, address: String?) async throws(FlowError) -> Identity {
        let key = Self.basicKey(username, password)
        let now = self.now()
        // The lifetime is an idle time: a hit renews it. Re-hashing an unchanged password could only
        // agree again, so a client in steady use never pays a second bcrypt; a changed hash ends it.
        let lifetime = self.configuration.basicCacheLifetime / .seconds(1)
        let entry = self.basicCache.withLock { cache -> BasicEntry? in
            guard var entry = cache[key], now - entry.lastUsed < lifetime else { return nil }
            entry.lastUsed = now
            cache[key] = entry
            return entry
        }
        if let entry, let user = self.current.users[username], !user.record.disabled, user.record.passwordHash == entry.passwordHash {
            return user.identity
        }
        // One bcrypt per credential at a time: the requests that arrive while it runs (a client's
        // connections all starting at once, or all finding the entry expired) wait for its answer.
        let verification = self.pendingBasic.withLock { pending in
            if let running = pending[key] { return running }
            let task = Task<AuthDirectory.User, any Error> {
                defer { _ = self.pendingBasic.withLock { $0.removeValue(forKey: key) } }
                let user = try await self.verifyPassword(username: username, password: password, address: address, via: "basic")
                // A Basic password checked with bcrypt is a login; the cached hits that follow are not.
                self.audit("login", user: username, address: address, via: "basic")
                let verified = self.now()
                self.basicCache.withLock { cache in
                    if cache.count >= 10_000 { cache = cache.filter { verified - $0.value.lastUsed < lifetime } }
                    cache[key] = BasicEntry(passwordHash: user.record.passwordHash, lastUsed: verified)
                }
                return user
            }
            pending[key] = task
            return task
        }
        do {
            return try await verification.value.identity
        } catch let error as FlowError {
            throw error
        } catch {
            throw FlowError(.internalError, "Internal error")
        }
    }

    /// The cache key of a Basic credential: a hash, so the cache holds no password.
    static func basicKey(_ username: String, _ password: String) -> [UInt8] {
        Secrets.digest("basic\u{0}\(username)\u{0}\(password)")
    }

    /// Checks a password under the login rate limit (SPEC §9.6). Every failure has the same message.
    /// The attempt counts against the limit from the start (SPEC §11: a burst of concurrent
    /// guesses gets no more than the limit's), and the hash waits for a slot of the global cap.
    func verifyPassword(username: String, password: String, address: String?, via: String) async throws(FlowError) -> AuthDirectory.User {
        let keys = ["user:" + username] + (address.map { ["address:" + $0] } ?? [])
        var logger = self.logger
        logger[metadataKey: "flow.user"] = .string(username)
        logger[metadataKey: "flow.auth.via"] = .string(via)
        if let address { logger[metadataKey: "flow.client"] = .string(address) }
        guard self.limiter.withLock({ $0.admit(keys, now: self.now()) }) else {
            logger.warning("login refused: too many failed attempts", metadata: ["flow.audit": "login refused"])
            self.metrics.failedLogin(limited: true)
            throw FlowError(.rateLimited, "Too many failed logins; try again later")
        }
        var failed = false
        defer { self.limiter.withLock { $0.finish(keys, failed: failed, now: self.now()) } }
        var user = self.current.users[username]
        var hash = user?.record.passwordHash ?? self.decoyHash
        var matches = try await self.checkPassword(password, hash: hash, logger: logger)
        // A user made, or a password set, a moment ago through another node: checked again only
        // when the store has a different hash for the name.
        if !matches, await self.catchUp(), let fresh = self.current.users[username], fresh.record.passwordHash != hash {
            user = fresh
            hash = fresh.record.passwordHash
            matches = try await self.checkPassword(password, hash: hash, logger: logger)
        }
        guard let user, matches, !user.record.disabled else {
            failed = true
            // An audit line like the successful login's, so both are found by flow.audit.
            logger.notice("login failed", metadata: ["flow.audit": "login failed"])
            self.metrics.failedLogin(limited: false)
            throw FlowError(.unauthenticated, "Invalid username or password")
        }
        return user
    }

    /// One bcrypt check, through the global cap on hashes.
    private func checkPassword(_ password: String, hash: String, logger: Logger) async throws(FlowError) -> Bool {
        guard let matches = await self.hashes.run({ await Secrets.verifyPassword(password, hash: hash) }) else {
            logger.warning("login refused: too many password checks at once")
            throw Self.busy
        }
        self.passwordChecks.add(1, ordering: .relaxed)
        return matches
    }

    /// A new password's hash, through the global cap on hashes.
    func hashPassword(_ password: String) async throws(FlowError) -> String {
        let cost = self.configuration.bcryptCost
        guard let hash = await self.hashes.run({ await Secrets.hashPassword(password, cost: cost) }) else { throw Self.busy }
        return hash
    }

    static let busy = FlowError(.rateLimited, "Too many password checks at once; try again shortly")
}
