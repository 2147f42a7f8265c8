@testable import FlowAuth
import FlowCore
import FlowProtocol
import FlowStoreTestSupport
import FlowTestSupport
import Foundation
import Logging
import Synchronization
import Testing

/// The auth service on a real store (a SQLite file, or a schema on the test PostgreSQL), with
/// a clock the test moves.
final class AuthFixture: Sendable {
    let store: any TestStore
    /// A second store on the same database: `flowgate user|token` while the daemon runs, or
    /// another node.
    let other: any TestStore
    let clock = TestClock()
    let log = RecordingLogHandler.Store()
    let auth: AuthService

    private init(store: any TestStore, other: any TestStore, failuresPerMinute: Int) {
        self.store = store
        self.other = other
        var configuration = AuthConfiguration()
        configuration.bcryptCost = 4
        configuration.loginFailuresPerMinute = failuresPerMinute
        let clock = self.clock
        self.auth = AuthService(store: store, configuration: configuration, logger: self.log.logger(), now: { clock.now })
    }

    /// Runs `body` with a fixture on a new, empty store of `kind`, removed afterwards.
    static func with(
        _ kind: StoreKind = .sqlite, failuresPerMinute: Int = 10, _ body: @escaping @Sendable (AuthFixture) async throws -> Void
    ) async throws {
        try await kind.withStores(2) { stores in
            try await body(AuthFixture(store: stores[0], other: stores[1], failuresPerMinute: failuresPerMinute))
        }
    }

    /// A second service on the same database, as `flowgate user|token` is while the daemon
    /// runs, or another node.
    func otherProcess() -> AuthService {
        var configuration = AuthConfiguration()
        configuration.bcryptCost = 4
        return AuthService(store: self.other, configuration: configuration, logger: .silent)
    }

    func advance(_ seconds: Double) { self.clock.advance(seconds) }

    func token(_ value: String) async throws -> Identity? {
        try await self.auth.authenticate(.token(value), origin: CallOrigin(transport: .http))
    }
}

/// Seconds since 1970 that move only when told.
final class TestClock: Sendable {
    private let seconds = Locked<Double>(1_800_000_000)
    var now: Double { self.seconds.withLock { $0 } }
    func advance(_ by: Double) { self.seconds.withLock { $0 += by } }
}

struct AuthServiceTests {
    @Test(arguments: StoreKind.allCases) func firstStartCreatesAdminOnceWithARandomPassword(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            let password = try #require(try await fixture.auth.bootstrap(adminPassword: nil))
            #expect(password.count >= 20)
            #expect(try await fixture.auth.bootstrap(adminPassword: nil) == nil, "a database with users is left alone")
            let (_, identity) = try await fixture.auth.login(username: "admin", password: password, address: nil)
            #expect(identity.roles == ["admin"])
            #expect(identity.grants.allow(.delete, on: Namespace("auth/users")!))
            #expect(Set(fixture.auth.current.roles.keys) == ["admin", "reader"])
        }
    }

    /// Two processes (nodes) starting on one empty database at once: one `admin`, one password.
    @Test(arguments: StoreKind.allCases) func twoNodesStartingTogetherCreateOneAdmin(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            let other = fixture.otherProcess()
            async let first = fixture.auth.bootstrap(adminPassword: nil)
            async let second = other.bootstrap(adminPassword: nil)
            let passwords = try await [first, second].compactMap { $0 }
            #expect(passwords.count == 1, "exactly one node created the first user")
            let password = try #require(passwords.first)
            try await fixture.auth.refresh()
            try await other.refresh()
            _ = try await fixture.auth.login(username: "admin", password: password, address: nil)
            _ = try await other.login(username: "admin", password: password, address: nil)
            #expect(Set(other.current.roles.keys) == ["admin", "reader"])
        }
    }

    /// Behind a load balancer the next call may reach another node: a user, token or password
    /// made through one node works on another at once, before its periodic reload.
    @Test(arguments: StoreKind.allCases) func aCredentialMadeThroughAnotherNodeWorksAtOnce(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            let other = fixture.otherProcess()
            try await other.ensureBuiltinRoles()
            _ = try await other.createUser(username: "nora", password: "nora-password", roles: ["reader"])
            let token = try await other.createToken(username: "nora", name: "ci", expires: nil, scopes: nil)
            #expect(fixture.auth.current.users["nora"] == nil, "this node has not reloaded")
            #expect(try await fixture.token(token.value)?.username == "nora")
            try await other.setPassword(username: "nora", password: "nora-new-password")
            let (_, identity) = try await fixture.auth.login(username: "nora", password: "nora-new-password", address: nil)
            #expect(identity.username == "nora")
            await #expect(throws: FlowError.self) { try await fixture.token("fgpat_" + String(repeating: "x", count: 40)) }
        }
    }

    @Test(arguments: StoreKind.allCases) func tokensWorkUntilRevokedOrExpired(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            let reader = try await fixture.auth.createUser(username: "rita", password: "rita-password", roles: ["reader"])
            let token = try await fixture.auth.createToken(username: reader.username, name: "ci", expires: fixture.clock.now + 60, scopes: nil)
            #expect(token.value.hasPrefix("fgpat_") && token.value.count >= 6 + 32)
            let identity = try #require(try await fixture.token(token.value))
            #expect(identity.username == "rita" && identity.tokenID == token.record.id)
            #expect(!fixture.auth.isRevoked(.token(token.value)))

            fixture.advance(61)
            await #expect(throws: FlowError.self) { try await fixture.token(token.value) }
            #expect(fixture.auth.isRevoked(.token(token.value)))
            #expect(try await fixture.auth.purgeExpiredTokens() == 1)

            let second = try await fixture.auth.createToken(username: "rita", name: "ci", expires: nil, scopes: nil)
            _ = try await fixture.auth.revokeToken(id: second.record.id, by: nil)
            await #expect(throws: FlowError.self) { try await fixture.token(second.value) }
            await #expect(throws: FlowError.self) { try await fixture.token(second.value + "x") }
        }
    }

    @Test(arguments: StoreKind.allCases) func aTokenMayNarrowButNeverWiden(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            _ = try await fixture.auth.createUser(username: "rita", password: "rita-password", roles: ["reader"])
            let device = Namespace("inventory/device")!
            let narrow = try await fixture.auth.createToken(username: "rita", name: "n", expires: nil, scopes: ["inventory/*:LIST"])
            let identity = try #require(try await fixture.token(narrow.value))
            #expect(identity.grants.allow(.list, on: device))
            #expect(!identity.grants.allow(.open, on: device), "the user may OPEN; the token may not")
            #expect(identity.scopes == ["inventory/*:LIST"])

            await #expect(throws: FlowError.self) {
                try await fixture.auth.createToken(username: "rita", name: "w", expires: nil, scopes: ["inventory/*:CREATE"])
            }
            // A token made with a narrowed token keeps the narrowing, and cannot widen it either.
            let child = try await fixture.auth.createToken(for: identity, name: "child", expires: nil, scopes: nil)
            #expect(child.record.scopes == ["inventory/*:LIST"])
            await #expect(throws: FlowError.self) { try await fixture.auth.createToken(for: identity, name: "w", expires: nil, scopes: ["*:OPEN"]) }
            await #expect(throws: FlowError.self) { try await fixture.auth.createToken(for: identity, name: "bad", expires: nil, scopes: ["not a scope"]) }
        }
    }

    /// SPEC §9.2: a token makes only tokens no longer-lived than itself, a token without expiry
    /// only comes from a password sign-in, and API tokens have a maximum lifetime.
    @Test(arguments: StoreKind.allCases) func aStolenTokenCannotBeMadePermanent(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            _ = try await fixture.auth.createUser(username: "rita", password: "rita-password", roles: ["reader"])
            let now = fixture.clock.now
            let (session, _) = try await fixture.auth.login(username: "rita", password: "rita-password", address: nil)
            let signedIn = try #require(try await fixture.token(session.value))
            // From a session: the maximum lifetime is the default and the limit.
            let yearLong = try await fixture.auth.createToken(for: signedIn, name: "a", expires: nil, scopes: nil)
            #expect(yearLong.record.expires == now + 365 * 86_400)
            let tooLong = try await fixture.auth.createToken(for: signedIn, name: "b", expires: now + 400 * 86_400, scopes: nil)
            #expect(tooLong.record.expires == now + 365 * 86_400, "a later expiry is shortened to the longest lifetime")
            await #expect(throws: FlowError.self) { try await fixture.auth.createToken(for: signedIn, name: "past", expires: now - 1, scopes: nil) }
            // A token that expires tomorrow makes tokens that expire by tomorrow, and no later.
            let tomorrow = try await fixture.auth.createToken(for: signedIn, name: "c", expires: now + 86_400, scopes: nil)
            let stolen = try #require(try await fixture.token(tomorrow.value))
            let child = try await fixture.auth.createToken(for: stolen, name: "d", expires: nil, scopes: nil)
            #expect(child.record.expires == now + 86_400)
            let outliving = try await fixture.auth.createToken(for: stolen, name: "e", expires: now + 2 * 86_400, scopes: nil)
            #expect(outliving.record.expires == now + 86_400, "a token never makes one that outlives it")
            // A token without expiry (the operator's) still makes only tokens that expire.
            let forever = try await fixture.auth.createToken(username: "rita", name: "ops", expires: nil, scopes: nil)
            #expect(forever.record.expires == nil, "the operator may make a token without expiry")
            let fromForever = try await fixture.auth.createToken(for: try #require(try await fixture.token(forever.value)), name: "f", expires: nil, scopes: nil)
            #expect(fromForever.record.expires == now + 365 * 86_400)
        }
    }

    /// bcrypt reads 72 bytes and stops at a NUL: longer passwords and ones with a NUL are
    /// pre-hashed, so every character counts.
    @Test func everyCharacterOfAPasswordCounts() async throws {
        try await AuthFixture.with { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            let long = String(repeating: "ä", count: 100) + "-end"
            _ = try await fixture.auth.createUser(username: "lena", password: long, roles: [])
            #expect(try await fixture.auth.login(username: "lena", password: long, address: nil).1.username == "lena")
            await #expect(throws: FlowError.self) {
                try await fixture.auth.login(username: "lena", password: String(repeating: "ä", count: 100) + "-END", address: nil)
            }
            _ = try await fixture.auth.createUser(username: "nul", password: "password\u{0}one", roles: [])
            await #expect(throws: FlowError.self) { try await fixture.auth.login(username: "nul", password: "password\u{0}two", address: nil) }
            #expect(try await fixture.auth.login(username: "nul", password: "password\u{0}one", address: nil).1.username == "nul")
            #expect(Secrets.bcryptInput("short-password") == "short-password", "hashes made before the rule still verify")
            await #expect(throws: FlowError.self) { try await fixture.auth.createUser(username: "x", password: String(repeating: "a", count: 1025), roles: []) }
        }
    }

    @Test func rfc3339TimesAreReadAsJSONSchemaMeansThem() {
        #expect(RFC3339.seconds("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.seconds("2030-01-31t12:00:00.5z") == 1_896_091_200.5)
        #expect(RFC3339.seconds("2030-01-31T13:30:00+01:30") == 1_896_091_200)
        #expect(RFC3339.seconds("0001-01-01T00:00:00Z") == -62_135_596_800)
        #expect(RFC3339.seconds("2016-12-31T23:59:60Z") == RFC3339.seconds("2016-12-31T23:59:59Z"))
        #expect(RFC3339.seconds("9999-12-31T23:59:59.999999-23:59") != nil)
        for bad in ["2030-02-30T00:00:00Z", "2030-01-31 12:00:00Z", "2030-01-31T12:00:00", "next week", "2030-01-31T24:00:00Z", "2030-01-31T12:00:00.Z"] {
            #expect(RFC3339.seconds(bad) == nil, "\(bad)")
        }
    }

    /// SPEC §11: every per-principal collection is capped.
    @Test(arguments: StoreKind.allCases) func scopesTokensAndSessionsPerUserAreCapped(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            var configuration = fixture.auth.configuration
            configuration.maxScopes = 3
            configuration.maxTokensPerUser = 2
            configuration.maxSessionsPerUser = 2
            let auth = AuthService(store: fixture.store, configuration: configuration, logger: .silent, now: { fixture.clock.now })
            _ = try await auth.bootstrap(adminPassword: "first-password")
            #expect(await errorCode { _ = try await auth.createRole(name: "wide", scopes: ["a/*:LIST", "b/*:LIST", "c/*:LIST", "d/*:LIST"]) } == .validationFailed)
            #expect(await errorCode { _ = try await auth.createRole(name: "ok", scopes: ["a/*:LIST", "b/*:LIST", "c/*:LIST"]) } == nil)
            #expect(await errorCode { _ = try await auth.createToken(username: "admin", name: "t", expires: nil, scopes: ["a/*:LIST", "b/*:LIST", "c/*:LIST", "d/*:LIST"]) } == .validationFailed)
            #expect(await errorCode { _ = try await auth.createToken(username: "admin", name: "1", expires: nil, scopes: nil) } == nil)
            #expect(await errorCode { _ = try await auth.createToken(username: "admin", name: "2", expires: nil, scopes: nil) } == nil)
            #expect(await errorCode { _ = try await auth.createToken(username: "admin", name: "3", expires: nil, scopes: nil) } == .rateLimited)
            // Sessions past the cap end the oldest: signing in always works.
            var sessions: [String] = []
            for _ in 0..<3 {
                fixture.advance(1)
                sessions.append(try await auth.login(username: "admin", password: "first-password", address: nil).0.value)
            }
            let alive = await withTaskGroup(of: Bool.self) { group in
                for session in sessions { group.addTask { (try? await auth.authenticate(.token(session), origin: CallOrigin(transport: .http))) != nil } }
                return await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(alive == 2)
            #expect(auth.isRevoked(.token(sessions[0])), "the oldest session ended")
        }
    }

    @Test(arguments: StoreKind.allCases) func basicIsCachedUntilThePasswordChangesEvenFromAnotherProcess(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            _ = try await fixture.auth.createUser(username: "bob", password: "bob-password", roles: ["reader"])
            let basic = Credential.basic(username: "bob", password: "bob-password")
            let origin = CallOrigin(transport: .http, clientAddress: "127.0.0.9")
            #expect(try await fixture.auth.authenticate(basic, origin: origin)?.username == "bob")
            #expect(try await fixture.auth.authenticate(basic, origin: origin)?.username == "bob")

            try await fixture.otherProcess().setPassword(username: "bob", password: "new-bob-password")
            try await fixture.auth.refreshIfChanged()
            #expect(fixture.auth.isRevoked(basic), "a socket opened with the old password is closed")
            await #expect(throws: FlowError.self) { try await fixture.auth.authenticate(basic, origin: origin) }
            let fresh = Credential.basic(username: "bob", password: "new-bob-password")
            #expect(try await fixture.auth.authenticate(fresh, origin: origin)?.username == "bob")
        }
    }

    @Test func basicInSteadyUseIsHashedOnceAndAgainOnlyAfterAnIdleLifetime() async throws {
        try await AuthFixture.with { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            let basic = Credential.basic(username: "admin", password: "first-password")
            let origin = CallOrigin(transport: .http)
            let before = fixture.auth.passwordChecks.load(ordering: .relaxed)
            for _ in 0..<4 {
                #expect(try await fixture.auth.authenticate(basic, origin: origin)?.username == "admin")
                fixture.advance(20)
            }
            #expect(fixture.auth.passwordChecks.load(ordering: .relaxed) == before + 1, "each use renews the 30 s lifetime")
            fixture.advance(31)
            #expect(try await fixture.auth.authenticate(basic, origin: origin)?.username == "admin")
            #expect(fixture.auth.passwordChecks.load(ordering: .relaxed) == before + 2, "idle past the lifetime: hashed again")
        }
    }

    @Test func failedLoginsAreLimitedAndNeverSayWhichPartWasWrong() async throws {
        try await AuthFixture.with(failuresPerMinute: 5) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            func message(_ username: String, _ password: String, address: String) async -> (ErrorCode, String)? {
                do {
                    _ = try await fixture.auth.login(username: username, password: password, address: address)
                    return nil
                } catch let error as FlowError {
                    return (error.code, error.message)
                } catch {
                    return nil
                }
            }
            let noUser = await message("nobody", "whatever-1", address: "10.0.0.1")
            let wrongPassword = await message("admin", "whatever-1", address: "10.0.0.2")
            #expect(noUser?.0 == .unauthenticated && noUser?.0 == wrongPassword?.0 && noUser?.1 == wrongPassword?.1)

            for attempt in 0..<4 { _ = await message("admin", "guess-\(attempt)", address: "10.0.0.\(attempt + 3)") }
            let limited = await message("admin", "first-password", address: "10.0.0.99")
            #expect(limited?.0 == .rateLimited, "the right password is refused while the user is limited")
            #expect(await message("nobody", "x-password", address: "10.0.0.1")?.0 == .unauthenticated)
            fixture.advance(61)
            #expect(await message("admin", "first-password", address: "10.0.0.99") == nil)
        }
    }

    /// SPEC §11: sixty wrong passwords at once for one user get at most the limit's guesses
    /// checked; the rest are refused before any hash.
    @Test func aBurstOfConcurrentGuessesGetsNoMoreThanTheLimit() async throws {
        try await AuthFixture.with(failuresPerMinute: 10) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            let checksBefore = fixture.auth.passwordChecks.load(ordering: .relaxed)
            let codes = await withTaskGroup(of: ErrorCode?.self, returning: [ErrorCode?].self) { group in
                for attempt in 0..<60 {
                    group.addTask {
                        do {
                            _ = try await fixture.auth.login(username: "admin", password: "guess-\(attempt)", address: "10.1.0.\(attempt)")
                            return nil
                        } catch let error as FlowError {
                            return error.code
                        } catch {
                            return nil
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let checked = codes.filter { $0 == .unauthenticated }.count
            #expect(checked <= 10, "\(checked) guesses were checked against a limit of 10")
            #expect(checked >= 1)
            #expect(codes.filter { $0 == .rateLimited }.count == 60 - checked)
            #expect(fixture.auth.passwordChecks.load(ordering: .relaxed) - checksBefore <= 10)
        }
    }

    /// SPEC §11: password hashing has a global cap; past it, and past a short line, a check is
    /// refused with RATE_LIMITED instead of queueing more hashes on the CPU.
    @Test func passwordHashesHaveAGlobalCap() async throws {
        final class Hashes: Sendable {
            let state = Locked((now: 0, peak: 0, released: false))
            var released: Bool { self.state.withLock { $0.released } }
        }
        let gate = HashGate(limit: 1, queueLimit: 2, maxWait: .seconds(30))
        let hashes = Hashes()
        let results = await withTaskGroup(of: Bool.self, returning: [Bool].self) { group in
            for _ in 0..<5 {
                group.addTask {
                    let value: Bool? = await gate.run {
                        hashes.state.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
                        while !hashes.released { try? await Task.sleep(for: .milliseconds(5)) }
                        hashes.state.withLock { $0.now -= 1 }
                        return true
                    }
                    return value ?? false
                }
            }
            // One hashes, two wait in line, two are refused at once; then let them all through.
            var refused = 0
            for _ in 0..<1000 where refused < 2 {
                if let result = await group.next(), !result { refused += 1 }
            }
            hashes.state.withLock { $0.released = true }
            var all = Array(repeating: false, count: refused)
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 5)
        #expect(results.filter { $0 }.count == 3)
        #expect(hashes.state.withLock { $0.peak } == 1)
        #expect(gate.running == 0)
        // A waiter past its wait is refused when its turn comes.
        let impatient = HashGate(limit: 1, queueLimit: 4, maxWait: .zero)
        let outcomes = await withTaskGroup(of: Bool.self, returning: [Bool].self) { group in
            group.addTask { await impatient.run { try? await Task.sleep(for: .milliseconds(100)); return true } ?? false }
            // The second comes once the first holds the slot (not after a guessed 20 ms).
            for _ in 0..<1000 where impatient.running == 0 { try? await Task.sleep(for: .milliseconds(1)) }
            group.addTask { await impatient.run { true } ?? false }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == 2 && outcomes.filter { $0 }.count == 1)
    }

    @Test func concurrentBasicAttemptsWithOneCredentialShareOneCheck() async throws {
        try await AuthFixture.with(failuresPerMinute: 3) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            let wrong = Credential.basic(username: "admin", password: "wrong-password")
            let origin = CallOrigin(transport: .http, clientAddress: "127.0.0.7")
            let refused = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<20 {
                    group.addTask { (try? await fixture.auth.authenticate(wrong, origin: origin)) == nil }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(refused == 20)
            // Twenty wrong attempts at once were one bcrypt and so one failure, not twenty: no limit yet.
            let right = Credential.basic(username: "admin", password: "first-password")
            #expect(try await fixture.auth.authenticate(right, origin: origin)?.username == "admin")
        }
    }

    @Test(arguments: StoreKind.allCases) func roleChangesReachTheUsersAndBuiltinRolesStay(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            _ = try await fixture.auth.createRole(name: "ops", scopes: ["inventory/*:LIST"])
            _ = try await fixture.auth.createUser(username: "olga", password: "olga-password", roles: ["ops"])
            let token = try await fixture.auth.createToken(username: "olga", name: "t", expires: nil, scopes: nil)
            let device = Namespace("inventory/device")!
            #expect(try await fixture.token(token.value)?.grants.allow(.create, on: device) == false)
            _ = try await fixture.auth.updateRole(name: "ops", scopes: ["inventory/*:*"])
            #expect(try await fixture.token(token.value)?.grants.allow(.create, on: device) == true, "a token without scopes follows its roles")
            _ = try await fixture.auth.deleteRole(name: "ops")
            #expect(fixture.auth.current.users["olga"]?.record.roles == [])
            await #expect(throws: FlowError.self) { try await fixture.auth.deleteRole(name: "admin") }
            await #expect(throws: FlowError.self) { try await fixture.auth.updateRole(name: "reader", scopes: ["*:*"]) }
            await #expect(throws: FlowError.self) { try await fixture.auth.createUser(username: "x", password: "x-password", roles: ["nope"]) }
            await #expect(throws: FlowError.self) { try await fixture.auth.createUser(username: "y", password: "short", roles: []) }
            await #expect(throws: FlowError.self) { try await fixture.auth.createRole(name: "bad", scopes: ["inventory:LIST,FETCH"]) }
        }
    }

    @Test(arguments: StoreKind.allCases) func disablingOrDeletingAUserStopsTheirTokens(_ kind: StoreKind) async throws {
        try await AuthFixture.with(kind) { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            _ = try await fixture.auth.createUser(username: "dan", password: "dan-password", roles: ["reader"])
            let token = try await fixture.auth.createToken(username: "dan", name: "t", expires: nil, scopes: nil)
            _ = try await fixture.auth.updateUser(username: "dan", password: nil, roles: nil, disabled: true)
            await #expect(throws: FlowError.self) { try await fixture.token(token.value) }
            _ = try await fixture.auth.updateUser(username: "dan", password: nil, roles: nil, disabled: false)
            #expect(try await fixture.token(token.value) != nil)
            _ = try await fixture.auth.deleteUser(username: "dan")
            await #expect(throws: FlowError.self) { try await fixture.token(token.value) }
            #expect(fixture.auth.current.tokens.isEmpty, "the user's tokens went with them")
        }
    }

    @Test func theLogNamesUsersButNeverSecrets() async throws {
        try await AuthFixture.with { fixture in
            _ = try await fixture.auth.bootstrap(adminPassword: "first-password")
            let (session, _) = try await fixture.auth.login(username: "admin", password: "first-password", address: "127.0.0.1")
            _ = try? await fixture.auth.login(username: "admin", password: "wrong-password", address: "127.0.0.1")
            let token = try await fixture.auth.createToken(username: "admin", name: "t", expires: nil, scopes: nil)
            _ = try await fixture.auth.revokeToken(id: token.record.id, by: nil)
            _ = try await fixture.auth.authenticate(.basic(username: "admin", password: "first-password"), origin: CallOrigin(transport: .http))
            let log = fixture.log.all.joined(separator: "\n")
            #expect(log.contains("flow.audit=login") && log.contains("flow.audit=token revoked"))
            #expect(log.split(separator: "\n").contains { $0.contains("login failed") && $0.contains("flow.audit=login failed") }, "a failed login is audited too")
            #expect(log.contains("flow.audit=login flow.auth.via=basic"), "a Basic password checked with bcrypt is a login")
            for secret in ["first-password", "wrong-password", session.value, token.value, "$2b$"] {
                #expect(!log.contains(secret))
            }
        }
    }
}
