import FlowAuth
import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOWebSocket
import Testing
import WSCore

/// SPEC §9 through real sockets, on the gateway `flowgate serve` builds: sessions, personal
/// access tokens, Basic, roles and scopes, revocation, the login rate limit, and a clean log.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct AuthEndToEndTests {
    static let device = #"{"name":"edge-1","serial":"SN-7","site":"HQ","ports":8}"#
    static let anonymous: HTTPFields = [.anonymous: "1", .contentType: "application/json"]

    static func basic(_ username: String, _ password: String) -> HTTPFields {
        [.authorization: "Basic " + Data("\(username):\(password)".utf8).base64EncodedString(), .contentType: "application/json"]
    }

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)", .contentType: "application/json"] }

    /// `CREATE auth/session` over HTTP, anonymous: the session token.
    static func login(_ live: some LoopbackClient, _ username: String, _ password: String) async throws -> String {
        let body = #"{"username":"\#(username)","password":"\#(password)"}"#
        let response = try await live.http("/api/auth/auth/session", method: .post, headers: Self.anonymous, body: body)
        return try #require(try response.envelope().data?["token"]?.stringValue, "login failed: \(response.bodyText)")
    }

    static func frame(_ method: String, _ namespace: String, objectid: String? = nil, data: String? = nil, token: String? = nil) -> String {
        var fields = [#""method":"\#(method)""#, #""namespace":"\#(namespace)""#]
        if let objectid { fields.append(#""objectid":"\#(objectid)""#) }
        if let data { fields.append(#""data":\#(data)"#) }
        if let token { fields.append(#""token":"\#(token)""#) }
        return "{" + fields.joined(separator: ",") + "}"
    }

    @Test func loginThenCRUDWithTheSessionOverBothTransportsThenLogout() async throws {
        try await LiveGateway.runShipped { live in
            let session = try await Self.login(live, "admin", LiveGateway.adminPassword)
            #expect(session.hasPrefix("fgses_"))
            let created = try await live.http("/api/inventory/inventory/device/", method: .post, headers: Self.bearer(session), body: Self.device)
            #expect(created.head.status == .ok)
            #expect(created.head.headerFields[.flowUser] == "admin")
            let id = try #require(try created.envelope().data?["id"]?.stringValue)

            try await live.webSocket("/ws?token=\(session)", headers: [.anonymous: "1"]) { socket in
                try await socket.send(Self.frame("OPEN", "inventory/device", objectid: id))
                #expect(try await socket.receive().data?["id"] == .string(id))
                try await socket.send(Self.frame("OPEN", "auth/session", objectid: "current"))
                let profile = try await socket.receive()
                #expect(profile.data?["user"] == "admin")
                #expect(profile.data?["scopes"]?.arrayValue?.contains("*:*") == true)
                #expect(profile.data?["token"]?["kind"] == "session")
            }
            // A frame's own token on a socket opened without one.
            try await live.webSocket("/ws", headers: [.anonymous: "1"]) { socket in
                try await socket.send(Self.frame("LIST", "inventory/device"))
                #expect(try await socket.receive().errorcode == .unauthenticated)
                try await socket.send(Self.frame("DELETE", "inventory/device", objectid: id, token: session))
                #expect(try await socket.receive().success)
            }

            let logout = try await live.http("/api/auth/auth/session/current", method: .delete, headers: Self.bearer(session))
            #expect(try logout.envelope().success)
            let after = try await live.http("/api/inventory/inventory/device/", headers: Self.bearer(session))
            #expect(after.head.status == .unauthorized)
            #expect(after.head.headerFields[.wwwAuthenticate] == nil, "a token's 401 prompts no browser for Basic")
        }
    }

    @Test func aRevokedTokenFailsAtOnceAndClosesTheSocketsOpenedWithIt() async throws {
        try await LiveGateway.runShipped { live in
            let created = try await live.http("/api/auth/auth/tokens/", method: .post, body: #"{"name":"integration"}"#).envelope()
            let token = try #require(created.data?["token"]?.stringValue)
            let id = try #require(created.data?["id"]?.stringValue)
            #expect(token.hasPrefix("fgpat_") && token.count >= 38)
            let listed = try await live.http("/api/auth/auth/tokens/").envelope()
            #expect(listed.data?.arrayValue?.first { $0["id"] == .string(id) }?["token"] == nil, "LIST shows metadata only")
            #expect(try await live.http("/api/inventory/inventory/device/", headers: Self.bearer(token)).head.status == .ok)

            let frameTokenAnswer = Locked<Response?>(nil)
            let close = try await live.webSocket("/ws/inventory/device", headers: [.flowAuthToken: token]) { socket in
                try await socket.send(#"{"method":"LIST"}"#)
                #expect(try await socket.receive().success)
                // A second socket that passes the token in each frame: it is not closed, its next frame fails.
                try await live.webSocket("/ws/inventory/device", headers: [.anonymous: "1"]) { other in
                    try await other.send(Self.frame("LIST", "inventory/device", token: token))
                    #expect(try await other.receive().success)
                    let revoked = try await live.http("/api/auth/auth/tokens/\(id)", method: .delete)
                    #expect(try revoked.envelope().success)
                    try await other.send(Self.frame("LIST", "inventory/device", token: token))
                    let answer = try await other.receive()
                    frameTokenAnswer.withLock { $0 = answer }
                }
                try await socket.expectClosedByServer(within: .seconds(5))
            }
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4001))
            #expect(frameTokenAnswer.withLock { $0 }?.errorcode == .unauthenticated)
            let refused = try await live.http("/api/inventory/inventory/device/", headers: Self.bearer(token))
            #expect(refused.head.status == .unauthorized)
            #expect(refused.head.headerFields[.wwwAuthenticate] == nil)
        }
    }

    @Test func anExpiringSessionClosesItsSocketWith4001() async throws {
        // Under a sanitizer a login alone can take longer than a second.
        try await LiveGateway.runShipped(configure: { $0.auth.sessionLifetime = TestTime.bound(.seconds(1)) }) { live in
            // Taken before the login: the session's second starts when it is issued, inside the login.
            let started = ContinuousClock.now
            let session = try await Self.login(live, "admin", LiveGateway.adminPassword)
            let close = try await live.webSocket("/ws/inventory/device?token=\(session)", headers: [.anonymous: "1"]) { socket in
                try await socket.send(#"{"method":"LIST"}"#)
                #expect(try await socket.receive().success)
                try await socket.expectClosedByServer(within: TestTime.bound(.seconds(10)))
            }
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4001))
            #expect(ContinuousClock.now - started >= TestTime.bound(.milliseconds(900)), "not before the session expired")
            #expect(try await live.http("/api/inventory/inventory/device/", headers: Self.bearer(session)).head.status == .unauthorized)
        }
    }

    @Test func aReaderCanListButIsForbiddenToCreateOnBothTransports() async throws {
        try await LiveGateway.runShipped { live in
            let user = try await live.http(
                "/api/auth/auth/users/", method: .post, body: #"{"username":"rita","password":"rita-password","roles":["reader"]}"#
            )
            #expect(user.head.status == .ok)
            #expect(!user.bodyText.contains("password") && !user.bodyText.contains("$2b$"), "no password or hash comes back")
            let rita = Self.basic("rita", "rita-password")
            #expect(try await live.http("/api/inventory/inventory/device/", headers: rita).head.status == .ok)
            let create = try await live.http("/api/inventory/inventory/device/", method: .post, headers: rita, body: Self.device)
            #expect(create.head.status == .forbidden)
            #expect(try create.envelope().errorcode == .forbidden)
            #expect(try await live.http("/api/auth/auth/users/", headers: rita).head.status == .forbidden, "* does not reach auth/")

            try await live.webSocket("/ws/inventory/device", headers: rita) { socket in
                try await socket.send(#"{"method":"LIST"}"#)
                #expect(try await socket.receive().success)
                try await socket.send(#"{"method":"CREATE","data":\#(Self.device)}"#)
                #expect(try await socket.receive().errorcode == .forbidden)
            }

            // Narrowing: a LIST-only token cannot OPEN; a token wider than its user is refused.
            let narrow = try await live.http(
                "/api/auth/auth/tokens/", method: .post, headers: rita, body: #"{"name":"list-only","scopes":["inventory/*:LIST"]}"#
            ).envelope()
            let narrowToken = try #require(narrow.data?["token"]?.stringValue)
            #expect(try await live.http("/api/inventory/inventory/device/", headers: Self.bearer(narrowToken)).head.status == .ok)
            let open = try await live.http("/api/inventory/inventory/device/some-id", headers: Self.bearer(narrowToken))
            #expect(open.head.status == .forbidden)
            let wider = try await live.http(
                "/api/auth/auth/tokens/", method: .post, headers: rita, body: #"{"name":"wider","scopes":["inventory/*:CREATE"]}"#
            )
            #expect(wider.head.status == .forbidden)
            // Rita sees her own tokens only; the admin sees all.
            let ritas = try await live.http("/api/auth/auth/tokens/", headers: rita).envelope().data?.arrayValue ?? []
            #expect(ritas.count == 1 && ritas.allSatisfy { $0["user"] == "rita" })
        }
    }

    @Test func authEndpointsAnswerBadRequestsWithTheirErrorCodes() async throws {
        try await LiveGateway.runShipped { live in
            let pat = try #require(try await live.http("/api/auth/auth/tokens/", method: .post, body: #"{"name":"p"}"#).envelope().data?["token"]?.stringValue)
            let logout = try await live.http("/api/auth/auth/session/current", method: .delete, headers: Self.bearer(pat))
            #expect(try logout.envelope().errorcode == .doNotExist, "logout needs a session token: there is none to end")
            #expect(try await live.http("/api/auth/auth/session/other").envelope().errorcode == .doNotExist)
            let past = try await live.http("/api/auth/auth/tokens/", method: .post, body: #"{"name":"old","expires":"2001-01-01T00:00:00Z"}"#)
            #expect(try past.envelope().errorcode == .validationFailed)
            let garbled = try await live.http("/api/auth/auth/tokens/", method: .post, body: #"{"name":"x","expires":"next week"}"#)
            #expect(try garbled.envelope().errorcode == .validationFailed)
            let builtin = try await live.http("/api/auth/auth/roles/admin", method: .patch, body: #"{"scopes":["*:LIST"]}"#)
            #expect(try builtin.envelope().errorcode == .forbidden)
            let unknownRole = try await live.http("/api/auth/auth/users/", method: .post, body: #"{"username":"u","password":"u-password","roles":["nope"]}"#)
            #expect(try unknownRole.envelope().errorcode == .doNotExist)
            #expect(try unknownRole.envelope().message == "Role 'nope' does not exist")
            // POST with an object id means UPDATE unless told otherwise; auth/session has RUN, not UPDATE.
            let unnamed = try await live.http("/api/auth/auth/session/current", method: .post, body: #"{"old_password":"a","new_password":"b-password"}"#)
            #expect(unnamed.head.status == .badRequest)
            #expect(try unnamed.envelope().errorcode == .unknownMethod)
            let trace = try await live.http("/api/auth/auth/session/current", method: .init("TRACE")!)
            #expect(trace.head.status == .methodNotAllowed)
            #expect(trace.head.headerFields[.allow] == "GET, POST, DELETE, OPTIONS", "exactly the verbs the OpenAPI document lists there")
            let taken = try await live.http("/api/auth/auth/users/", method: .post, body: #"{"username":"admin","password":"whatever-1"}"#)
            #expect(try taken.envelope().errorcode == .alreadyExists)
            let login = try await live.http("/api/auth/auth/session", method: .post, headers: Self.anonymous, body: #"{"username":"admin"}"#)
            #expect(try login.envelope().errorcode == .validationFailed, "no password: a schema error, not a failed login")
            #expect(try await live.http("/api/auth/auth/users/nobody").envelope().errorcode == .doNotExist)
            let badName = try await live.http("/api/auth/auth/users/", method: .post, body: #"{"username":"a b","password":"ab-password"}"#)
            #expect(try badName.envelope().data?["errors"]?.arrayValue?.first?["path"] == "/username")
            let badScope = try await live.http("/api/auth/auth/roles/", method: .post, body: #"{"name":"ops","scopes":["ops/*:FETCH"]}"#)
            #expect(try badScope.envelope().data?["errors"]?.arrayValue?.first?["path"] == "/scopes/0")
            #expect(try await live.http("/api/auth/auth/roles/", method: .post, body: #"{"name":"ops","scopes":["ops/*:*"]}"#).envelope().success)
            #expect(try await live.http("/api/auth/auth/roles/", method: .post, body: #"{"name":"ops","scopes":[]}"#).envelope().errorcode == .alreadyExists)

            // Someone else's token is not found by a user without the auth/tokens scope.
            _ = try await live.http("/api/auth/auth/users/", method: .post, body: #"{"username":"vic","password":"vic-password","roles":["reader"]}"#)
            let adminToken = try #require(try await live.http("/api/auth/auth/tokens/", method: .post, body: #"{"name":"a"}"#).envelope().data?["id"]?.stringValue)
            let vic = Self.basic("vic", "vic-password")
            #expect(try await live.http("/api/auth/auth/tokens/\(adminToken)", method: .delete, headers: vic).envelope().errorcode == .doNotExist)
            #expect(try await live.http("/api/auth/auth/tokens/\(adminToken)", headers: vic).envelope().errorcode == .doNotExist)
            let run = vic.adding(.flowRequestMethod, "RUN")
            let wrongOld = try await live.http(
                "/api/auth/auth/session/current", method: .post, headers: run, body: #"{"old_password":"not-vics","new_password":"vic-new-password"}"#
            )
            #expect(try wrongOld.envelope().errorcode == .unauthenticated)
            let shortNew = try await live.http(
                "/api/auth/auth/session/current", method: .post, headers: run, body: #"{"old_password":"vic-password","new_password":"short"}"#
            )
            #expect(try shortNew.envelope().errorcode == .validationFailed)
        }
    }

    @Test func basicWithTheRightPasswordPassesAndTheWrongOneIs401() async throws {
        try await LiveGateway.runShipped { live in
            let right = try await live.http("/api/inventory/inventory/device/", headers: Self.basic("admin", LiveGateway.adminPassword))
            #expect(right.head.status == .ok)
            #expect(right.head.headerFields[.flowUser] == "admin")
            let wrong = try await live.http("/api/inventory/inventory/device/", headers: Self.basic("admin", "not-the-password"))
            #expect(wrong.head.status == .unauthorized)
            #expect(wrong.head.headerFields[.wwwAuthenticate] == #"Basic realm="flowgate""#)
            #expect(wrong.head.headerFields[.flowUser] == nil)
            let none = try await live.http("/api/inventory/inventory/device/", headers: [.anonymous: "1"])
            #expect(none.head.status == .unauthorized)
        }
    }

    @Test func failedLoginsHitTheRateLimitAndNeverSayWhichPartWasWrong() async throws {
        try await LiveGateway.runShipped { live in
            func attempt(_ username: String, _ password: String) async throws -> Response {
                let body = #"{"username":"\#(username)","password":"\#(password)"}"#
                return try await live.http("/api/auth/auth/session", method: .post, headers: Self.anonymous, body: body).envelope()
            }
            let noUser = try await attempt("nobody", "some-password")
            let wrongPassword = try await attempt("admin", "some-password")
            #expect(noUser.errorcode == .unauthenticated && wrongPassword.errorcode == .unauthenticated)
            #expect(noUser.message == wrongPassword.message)
            var limitedAfter: Int?
            for failure in 3...30 {
                if try await attempt("admin", "guess-\(failure)").errorcode == .rateLimited {
                    limitedAfter = failure
                    break
                }
            }
            #expect(limitedAfter != nil, "the limit engaged within 30 failed logins")
            let right = try await attempt("admin", LiveGateway.adminPassword)
            #expect(right.errorcode == .rateLimited, "while limited, even the right password is refused")
            let http = try await live.http("/api/inventory/inventory/device/", headers: Self.basic("admin", "another-guess"))
            #expect(http.head.status == .tooManyRequests)
        }
    }

    @Test func aWholeSessionLogsNoTokenAndNoPassword() async throws {
        let log = RecordingLogHandler.Store()
        let secrets = Locked<[String]>([LiveGateway.adminPassword, "rita-password", "rita-new-password", "wrong-password"])
        try await LiveGateway.runShipped(logger: log.logger(level: .trace)) { live in
            let session = try await Self.login(live, "admin", LiveGateway.adminPassword)
            _ = try await live.http(
                "/api/auth/auth/users/", method: .post, headers: Self.bearer(session), body: #"{"username":"rita","password":"rita-password","roles":["reader"]}"#
            )
            let pat = try #require(
                try await live.http("/api/auth/auth/tokens/", method: .post, headers: Self.basic("rita", "rita-password"), body: #"{"name":"x"}"#)
                    .envelope().data
            )
            let token = try #require(pat["token"]?.stringValue)
            secrets.withLock { $0 += [session, token] }
            _ = try await live.http("/api/inventory/inventory/device/", method: .post, headers: Self.bearer(token), body: Self.device)
            _ = try await live.http("/api/inventory/inventory/device/", headers: Self.basic("rita", "wrong-password"))
            try await live.webSocket("/ws/inventory/device?token=\(token)", headers: [.anonymous: "1"]) { socket in
                try await socket.send(#"{"method":"LIST","requestid":1}"#)
                _ = try await socket.receive()
                try await socket.send(#"{"method":"LIST","token":"fgpat_not-a-real-token-at-all-0000000000"}"#)
                _ = try await socket.receive()
            }
            let change = #"{"old_password":"rita-password","new_password":"rita-new-password"}"#
            let changed = try await live.http(
                "/api/auth/auth/session/current", method: .post, headers: Self.basic("rita", "rita-password").adding(.flowRequestMethod, "RUN"), body: change
            )
            #expect(try changed.envelope().success)
            _ = try await live.http("/api/auth/auth/tokens/\(pat["id"]?.stringValue ?? "")", method: .delete, headers: Self.bearer(session))
        }
        let text = log.all.joined(separator: "\n")
        for secret in secrets.withLock({ $0 }) + ["$2b$", "fgpat_not-a-real-token"] {
            #expect(!text.contains(secret), "the log shows a secret")
        }
        for event in ["flow.audit=login", "flow.audit=token created", "flow.audit=token revoked", "flow.audit=password changed", "flow.audit=user created"] {
            #expect(text.contains(event), "no audit line \(event)")
        }
        #expect(log.all.contains { $0.contains("FORBIDDEN") && $0.contains("flow.user=rita") && $0.contains("flow.errorid=") && $0.contains("flow.namespace=") })
    }
}

extension HTTPFields {
    func adding(_ name: HTTPField.Name, _ value: String) -> HTTPFields {
        var fields = self
        fields[name] = value
        return fields
    }
}
