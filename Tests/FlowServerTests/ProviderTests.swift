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

/// SPEC §5.4 through real sockets on the gateway `flowgate serve` builds: providers register,
/// are called over WebSocket and HTTP, and every way a call to them can fail answers with its
/// error code in time and leaves no call pending.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ProviderTests {
    static let echo = #"{"namespace":"demo/jobs","methods":["LIST","OPEN","RUN","CREATE"]}"#

    static func registration(_ namespace: String = "demo/jobs", _ extra: String = "") -> String {
        #"{"namespace":"\#(namespace)","methods":["LIST","OPEN","RUN","CREATE"]\#(extra.isEmpty ? "" : "," + extra)}"#
    }

    static func frame(_ method: String, _ namespace: String = "demo/jobs", objectid: String? = nil, data: String? = nil, requestid: String = "r1") -> String {
        var fields = [#""method":"\#(method)""#, #""namespace":"\#(namespace)""#, #""requestid":"\#(requestid)""#]
        if let objectid { fields.append(#""objectid":"\#(objectid)""#) }
        if let data { fields.append(#""data":\#(data)"#) }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// One call over a fresh WebSocket, with how long the answer took.
    static func call(_ live: LiveGateway, _ frame: String, headers: HTTPFields = [:]) async throws -> (Response, Duration) {
        let answer = Locked<(Response, Duration)?>(nil)
        try await live.webSocket(headers: headers) { socket in
            let start = ContinuousClock.now
            try await socket.send(frame)
            let response = try await socket.receive()
            answer.withLock { $0 = (response, ContinuousClock.now - start) }
        }
        return try #require(answer.withLock { $0 })
    }

    /// Polls `condition` for up to `limit` (what the gateway does next happens on another task).
    static func eventually(within limit: Duration = .seconds(2), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + TestTime.bound(limit)
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    @Test func aRegisteredProviderIsCalledOverWebSocketAndHTTPAndIsPublished() async throws {
        try await LiveGateway.runShipped { live in
            try await ScriptedProvider.with(live, registration: Self.registration("demo/jobs", #""title":"Demo jobs","schema":{"type":"object","required":["n"]}"#)) { frame in
                .answer(#"{"echo":\#(frame["method"].map { "\($0)" } ?? "null"),"objectid":\#(frame["objectid"].map { "\($0)" } ?? "null")}"#)
            } _: { provider in
                let (listed, _) = try await Self.call(live, Self.frame("LIST"))
                #expect(listed.success && listed.requestid == .string("r1"))
                #expect(listed.data?["echo"] == "LIST")
                // The provider sees who calls, never the token.
                let sent = try #require(provider.calls.first)
                #expect(sent["method"] == "LIST" && sent["namespace"] == "demo/jobs" && sent["token"] == nil)
                #expect(sent["identity"]?["user"] == "admin")
                #expect(sent["identity"]?["roles"] == ["admin"])
                #expect(sent["identity"]?["scopes"]?.arrayValue?.contains("provide:*") == true)

                // HTTP: the same endpoint under /api/<application>/, fields from headers.
                let http = try await live.http("/api/demo/demo/jobs/j-7", headers: [.flowRequestMethod: "OPEN"])
                #expect(http.head.status == .ok)
                #expect(try http.envelope().data?["objectid"] == "j-7")
                #expect(http.head.headerFields[.flowUser] == "admin")

                // Data is validated against the registration's schema before the provider sees it.
                let invalid = try await live.http("/api/demo/demo/jobs/", method: .post, headers: [.contentType: "application/json"], body: #"{"m":1}"#)
                #expect(invalid.head.status == .unprocessableContent)
                #expect(try invalid.envelope().errorcode == .validationFailed)
                #expect(provider.calls.count == 2)

                // Published: system/endpoints and the OpenAPI document (with the schema).
                let described = try await live.http("/api/system/system/endpoints/demo:jobs", headers: [.flowRequestMethod: "OPEN"]).envelope()
                #expect(described.data?["kind"] == "provider" && described.data?["served"] == true && described.data?["providers"] == 1)
                #expect(described.data?["title"] == "Demo jobs")
                let document = try await live.http("/api/openapi.json").bodyText
                #expect(document.contains("/api/demo/demo/jobs/"))
                #expect(document.contains(#""required":["n"]"#))
                #expect(live.gateway.providers.pendingCalls == 0)
            }
            // Gone with its provider: out of the document, and 503 (not 404) during the grace period.
            #expect(await Self.eventually { live.gateway.providers.providerCount(Namespace("demo/jobs")!) == 0 })
            #expect(try await !live.http("/api/openapi.json").bodyText.contains("/api/demo/demo/jobs/"))
            let (during, _) = try await Self.call(live, Self.frame("LIST"))
            #expect(during.errorcode == .providerUnavailable)
        }
    }

    @Test func aSilentProviderTimesOutGetsACancelAndItsLateAnswerIsDropped() async throws {
        try await LiveGateway.runShipped { live in
            try await ScriptedProvider.with(live, registration: Self.registration("demo/jobs", #""timeout_ms":300"#)) { frame in
                frame["objectid"] == "slow" ? .silence : .answer(#""fast""#)
            } _: { provider in
                let (response, elapsed) = try await Self.call(live, Self.frame("OPEN", objectid: "slow"))
                #expect(response.errorcode == .timeout)
                #expect(response.message == "The provider did not answer within 300 ms")
                #expect(elapsed >= .milliseconds(300) && elapsed < TestTime.bound(.milliseconds(1300)))
                let callID = try #require(provider.calls.first?["call"]?.stringValue)
                #expect(await Self.eventually { provider.cancels == [callID] })
                #expect(live.gateway.providers.pendingCalls == 0)

                // The late answer reaches nobody; the next call gets its own answer, not that one.
                try await live.webSocket { socket in
                    try await provider.send(#"{"call":"\#(callID)","success":true,"status":0,"data":"late"}"#)
                    try await socket.send(Self.frame("OPEN", objectid: "quick", requestid: "r2"))
                    let next = try await socket.receive()
                    #expect(next.requestid == .string("r2") && next.data == "fast")
                }
            }
        }
    }

    @Test func aProviderThatDiesAnswersItsPendingCallsAtOnce() async throws {
        // A grace period a loaded CI machine cannot outrun between the provider's death and the
        // next call (400 ms once let the LIST arrive after the withdrawal: NO_SUCH_ENDPOINT).
        try await LiveGateway.runShipped(configure: { $0.providers.gracePeriod = TestTime.bound(.seconds(3)) }) { live in
            try await ScriptedProvider.with(live, registration: Self.registration()) { _ in .close } _: { _ in
                // A RUN is not retried: PROVIDER_UNAVAILABLE at once, far inside the 30 s timeout.
                let (response, elapsed) = try await Self.call(live, Self.frame("RUN", objectid: "j-1", data: "{}"))
                #expect(response.errorcode == .providerUnavailable)
                #expect(elapsed < TestTime.bound(.seconds(1)))
                #expect(live.gateway.providers.pendingCalls == 0)
            }
            // The grace period answers 503, then the namespace is withdrawn: 404.
            let (during, _) = try await Self.call(live, Self.frame("LIST"))
            #expect(during.errorcode == .providerUnavailable)
            #expect(await Self.eventually(within: .seconds(10)) { live.gateway.registry.endpoint(for: Namespace("demo/jobs")!) == nil })
            let (after, _) = try await Self.call(live, Self.frame("LIST"))
            #expect(after.errorcode == .noSuchEndpoint)
        }
    }

    @Test func aCallerThatGoesAwayCancelsItsCallAtTheProvider() async throws {
        try await LiveGateway.runShipped { live in
            try await ScriptedProvider.with(live, registration: Self.registration()) { _ in .silence } _: { provider in
                try await live.webSocket { socket in
                    try await socket.send(Self.frame("OPEN", objectid: "j-1"))
                    #expect(await Self.eventually { provider.calls.count == 1 })
                }
                let callID = try #require(provider.calls.first?["call"]?.stringValue)
                #expect(await Self.eventually(within: .seconds(1)) { provider.cancels == [callID] })
                #expect(live.gateway.providers.pendingCalls == 0)

                // The same for a frame without requestid (answered in order, not concurrently).
                try await live.webSocket { socket in
                    try await socket.send(#"{"method":"OPEN","namespace":"demo/jobs","objectid":"j-2"}"#)
                    #expect(await Self.eventually { provider.calls.count == 2 })
                }
                let second = try #require(provider.calls.last?["call"]?.stringValue)
                #expect(await Self.eventually(within: .seconds(1)) { provider.cancels == [callID, second] })
                #expect(live.gateway.providers.pendingCalls == 0)

                // And for an HTTP client that hangs up before the answer.
                let raw = try await RawSocket.connect(port: live.port)
                let basic = LiveGateway.adminHeaders[.authorization] ?? ""
                try await raw.write("GET /api/demo/demo/jobs/j-3 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(basic)\r\nFlow-Request-Method: OPEN\r\n\r\n")
                #expect(await Self.eventually { provider.calls.count == 3 })
                await raw.close()
                let third = try #require(provider.calls.last?["call"]?.stringValue)
                #expect(await Self.eventually(within: .seconds(1)) { provider.cancels == [callID, second, third] })
                #expect(live.gateway.providers.pendingCalls == 0)
            }
        }
    }

    @Test func aFullProviderMakesCallsWaitBrieflyThenAnswersRateLimited() async throws {
        // Margins wide enough for a loaded machine (other suites and the Autobahn run beside this
        // one; CI once saw a 50 ms hold outlast a 700 ms wait): a waiting call must outlast "short"
        // (50 ms) by far, and give up long before "long" (6 s) ends.
        try await LiveGateway.runShipped(configure: { $0.providers.slotWait = .seconds(2) }) { live in
            try await ScriptedProvider.with(live, registration: Self.registration("demo/jobs", #""concurrency":1"#)) { frame in
                switch frame["objectid"]?.stringValue {
                case "long": .after(.seconds(6), .answer(#""long""#))
                case "short": .after(.milliseconds(50), .answer(#""short""#))
                default: .answer(#""next""#)
                }
            } _: { _ in
                try await live.webSocket { socket in
                    // One slot: "long" holds it for 6 s; a call meanwhile waits 2 s, then RATE_LIMITED.
                    try await socket.send(Self.frame("OPEN", objectid: "long", requestid: "long"))
                    try await Task.sleep(for: .milliseconds(100))
                    let start = ContinuousClock.now
                    try await socket.send(Self.frame("OPEN", objectid: "other", requestid: "other"))
                    let limited = try await socket.receive()
                    #expect(limited.requestid == .string("other") && limited.errorcode == .rateLimited)
                    #expect(ContinuousClock.now - start < TestTime.bound(.milliseconds(5000)))
                    #expect(try await socket.receive().data == "long")
                    // A call that finds the slot taken for a short while gets it when it frees.
                    try await socket.send(Self.frame("OPEN", objectid: "short", requestid: "short"))
                    try await socket.send(Self.frame("OPEN", objectid: "queued", requestid: "queued"))
                    // (Either may take the slot first: they run concurrently.)
                    let answers = [try await socket.receive(), try await socket.receive()]
                    #expect(answers.allSatisfy(\.success) && Set(answers.compactMap(\.data)) == ["short", "next"], "\(answers)")
                }
                #expect(live.gateway.providers.pendingCalls == 0)
                #expect(live.gateway.providers.waitingCalls == 0)
            }
        }
    }

    @Test func idempotentCallsMoveToAnotherProviderWhenTheirsDies() async throws {
        try await LiveGateway.runShipped { live in
            try await ScriptedProvider.with(live, name: "a", registration: Self.registration()) { frame in
                frame["objectid"] == "hold" ? .after(.milliseconds(800), .answer(#""a""#)) : .close
            } _: { first in
                try await ScriptedProvider.with(live, name: "b", registration: Self.registration()) { _ in .answer(#""b""#) } _: { second in
                    // Least in flight: while a holds one call, the next goes to b.
                    try await live.webSocket { socket in
                        try await socket.send(Self.frame("OPEN", objectid: "hold", requestid: "hold"))
                        #expect(await Self.eventually { first.calls.count == 1 })
                        try await socket.send(Self.frame("OPEN", objectid: "x", requestid: "x"))
                        let quick = try await socket.receive()
                        #expect(quick.requestid == .string("x") && quick.data == "b")
                        #expect(try await socket.receive().data == "a")
                    }
                    // Now both are idle and a is first: a dies on the LIST, which b answers.
                    let (listed, _) = try await Self.call(live, Self.frame("LIST"))
                    #expect(listed.success && listed.data == "b")
                    #expect(first.calls.count == 2)
                    #expect(second.calls.count == 2)
                    #expect(live.gateway.providers.pendingCalls == 0)
                }
            }
        }
    }

    @Test func aNonIdempotentCallIsNotRetriedWhenItsProviderDies() async throws {
        try await LiveGateway.runShipped { live in
            try await ScriptedProvider.with(live, name: "a", registration: Self.registration()) { _ in .close } _: { _ in
                try await ScriptedProvider.with(live, name: "b", registration: Self.registration()) { _ in .answer(#""b""#) } _: { second in
                    let (response, _) = try await Self.call(live, Self.frame("CREATE", data: #"{"n":1}"#))
                    #expect(response.errorcode == .providerUnavailable)
                    #expect(second.calls.isEmpty)
                }
            }
        }
    }

    @Test func aMalformedAnswerIsProviderUnavailableAndTheProviderStays() async throws {
        let recorder = RecordingLogHandler.Store()
        try await LiveGateway.runShipped(logger: recorder.logger(level: .info)) { live in
            try await ScriptedProvider.with(live, registration: Self.registration()) { frame in
                switch frame["objectid"]?.stringValue {
                case "bad": .raw(#"{"call":"$CALL","success":"yes"}"#)
                case "failing": .raw(#"{"call":"$CALL","status":3,"success":false,"errorcode":"DO_NOT_EXIST","message":"No job j-9"}"#)
                default: .answer(#""fine""#)
                }
            } _: { _ in
                let (bad, _) = try await Self.call(live, Self.frame("OPEN", objectid: "bad"))
                #expect(bad.errorcode == .providerUnavailable && bad.message == "The provider sent a malformed answer")
                let (failing, _) = try await Self.call(live, Self.frame("OPEN", objectid: "failing"))
                #expect(failing.errorcode == .doNotExist && failing.message == "No job j-9" && failing.errorid != nil)
                let (fine, _) = try await Self.call(live, Self.frame("OPEN", objectid: "ok"))
                #expect(fine.data == "fine")
            }
        }
        #expect(recorder.all.contains { $0.contains("malformed answer from the provider") && $0.contains("success") })
    }

    @Test func registrationsAreCheckedAndAnsweredWithTheirErrorCodes() async throws {
        try await LiveGateway.runShipped { live in
            func register(_ data: String, headers: HTTPFields = [:]) async throws -> Response {
                try await Self.call(live, #"{"method":"CREATE","namespace":"system/providers","requestid":"g","data":\#(data)}"#, headers: headers).0
            }
            // A reader has no provide: scope.
            _ = try await live.http(
                "/api/auth/auth/users/", method: .post, headers: [.contentType: "application/json"],
                body: #"{"username":"rita","password":"rita-password","roles":["reader"]}"#
            )
            let rita: HTTPFields = [.authorization: "Basic " + Data("rita:rita-password".utf8).base64EncodedString()]
            #expect(try await register(Self.echo, headers: rita).errorcode == .forbidden)
            #expect(try await register(Self.echo, headers: [.anonymous: "1"]).errorcode == .unauthenticated)
            #expect(try await register(#"{"namespace":"system/mine","methods":["LIST"]}"#).errorcode == .forbidden)
            #expect(try await register(#"{"namespace":"inventory/device","methods":["LIST"]}"#).errorcode == .alreadyExists)
            #expect(try await register(#"{"namespace":"demo/x"}"#).errorcode == .validationFailed)
            let invalid = try await register(#"{"namespace":"Demo","methods":["GET"],"concurrency":0,"extra":1}"#)
            #expect(invalid.errorcode == .validationFailed)
            #expect(invalid.data?["errors"]?.arrayValue?.count == 4)
            #expect(try await register(##"{"namespace":"demo/x","methods":["LIST"],"schema":{"$dynamicRef":"#a"}}"##).errorcode == .validationFailed)
            // Over HTTP there is no socket to send calls to.
            let http = try await live.http("/api/system/system/providers/", method: .post, headers: [.contentType: "application/json"], body: Self.echo)
            #expect(try http.envelope().errorcode == .methodNotAllowed)
            #expect(http.head.headerFields[.allow] == "GET, OPTIONS", "over HTTP, system/providers is LIST and OPEN only")
            // A second provider must offer what the first one does.
            try await ScriptedProvider.with(live, registration: Self.echo, script: { _ in .silence }) { _ in
                #expect(try await register(#"{"namespace":"demo/jobs","methods":["LIST"]}"#).errorcode == .conflict)
                let listed = try await live.http("/api/system/system/providers/").envelope()
                #expect(listed.data?.arrayValue?.count == 1)
            }
        }
    }

    /// SPEC §11: what a provider registers is bounded work and bounded size, and a socket holds
    /// a bounded number of registrations.
    @Test func registrationsAreBounded() async throws {
        try await LiveGateway.runShipped(configure: { $0.providers.maxRegistrationsPerSocket = 2; $0.providers.maxSchemaBytes = 2048 }) { live in
            try await live.webSocket { socket in
                func register(_ data: String) async throws -> Response {
                    try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":"g","data":\#(data)}"#)
                    return try await socket.receive()
                }
                // A $ref cycle that never steps into the data would recurse forever: refused, pointer named.
                let cycle = try await register(##"{"namespace":"demo/c","methods":["RUN"],"schema":{"$defs":{"a":{"allOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}}"##)
                #expect(cycle.errorcode == .validationFailed)
                #expect(cycle.data?["errors"]?.arrayValue?.first?["path"] == "/schema/$defs/a/allOf/0/$ref", "\(cycle)")
                let big = try await register(#"{"namespace":"demo/b","methods":["RUN"],"schema":{"description":"\#(String(repeating: "x", count: 3000))"}}"#)
                #expect(big.errorcode == .validationFailed && big.data?["errors"]?.arrayValue?.first?["path"] == "/schema")
                #expect(try await register(Self.registration("demo/one")).success)
                #expect(try await register(Self.registration("demo/two")).success)
                let third = try await register(Self.registration("demo/three"))
                #expect(third.errorcode == .rateLimited, "\(third)")
                // The socket and the gateway are fine: a normal call still answers.
                try await socket.send(#"{"method":"LIST","namespace":"system/providers","requestid":"l"}"#)
                #expect(try await socket.receive().data?.arrayValue?.count == 2)
            }
        }
    }

    /// SPEC §11: a provider whose identity loses the provide: scope loses its registration at
    /// once (callers get PROVIDER_UNAVAILABLE, nothing more reaches it), and a socket with no
    /// registration left is closed with 4003.
    @Test func aProviderThatLosesItsProvideScopeLosesItsRegistration() async throws {
        try await LiveGateway.runShipped(configure: { $0.providers.gracePeriod = .seconds(10) }) { live in
            let json: HTTPFields = [.contentType: "application/json"]
            #expect(try await live.http("/api/auth/auth/roles/", method: .post, headers: json, body: #"{"name":"prov","scopes":["provide:demo/*"]}"#).envelope().success)
            #expect(try await live.http("/api/auth/auth/users/", method: .post, headers: json, body: #"{"username":"pia","password":"pia-password","roles":["prov"]}"#).envelope().success)
            let pia: HTTPFields = [.authorization: "Basic " + Data("pia:pia-password".utf8).base64EncodedString()]
            let close = try await live.webSocket(headers: pia) { socket in
                try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":"g","data":\#(Self.registration("demo/jobs"))}"#)
                #expect(try await socket.receive().success)
                #expect(try await live.http("/api/system/system/providers/").envelope().data?.arrayValue?.count == 1)
                // The role keeps a call scope but loses provide:.
                let changed = try await live.http("/api/auth/auth/roles/prov", method: .put, headers: json, body: #"{"scopes":["demo/*:LIST"]}"#)
                #expect(try changed.envelope().success)
                try await socket.expectClosedByServer(within: .seconds(5))
            }
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4003))
            #expect(try await live.http("/api/system/system/providers/").envelope().data?.arrayValue?.count == 0)
            let (call, _) = try await Self.call(live, Self.frame("LIST"))
            #expect(call.errorcode == .providerUnavailable)
        }
    }

    @Test func deleteUnregistersAfterTheCallsInFlightAreAnswered() async throws {
        try await LiveGateway.runShipped { live in
            try await ScriptedProvider.with(live, registration: Self.registration()) { _ in .after(.milliseconds(400), .answer(#""done""#)) } _: { provider in
                let id = try #require(provider.registrationID.withLock { $0 })
                try await live.webSocket { socket in
                    try await socket.send(Self.frame("OPEN", objectid: "j-1", requestid: "inflight"))
                    #expect(await Self.eventually { provider.calls.count == 1 })
                    try await provider.send(#"{"method":"DELETE","namespace":"system/providers","objectid":"\#(id)","requestid":"bye"}"#)
                    // No new call is sent to a leaving provider; the one in flight is answered.
                    var draining = false
                    for _ in 0..<100 where !draining {
                        let shown = try await live.http("/api/system/system/providers/\(id)", headers: [.flowRequestMethod: "OPEN"]).envelope()
                        draining = shown.data?["draining"] == true
                        if !draining { try await Task.sleep(for: .milliseconds(10)) }
                    }
                    #expect(draining)
                    try await socket.send(Self.frame("OPEN", objectid: "j-2", requestid: "late"))
                    let answers = [try await socket.receive(), try await socket.receive()]
                    #expect(answers.first { $0.requestid == .string("late") }?.errorcode == .providerUnavailable)
                    #expect(answers.first { $0.requestid == .string("inflight") }?.data == "done")
                }
                #expect(provider.calls.count == 1)
                #expect(live.gateway.providers.providerCount(Namespace("demo/jobs")!) == 0)
            }
        }
    }

    @Test func aReservedNamespaceAnswersUnavailableUntilAProviderComes() async throws {
        try await LiveGateway.runShipped { live in
            let (before, _) = try await Self.call(live, Self.frame("LIST", "scheduler/queue"))
            #expect(before.errorcode == .providerUnavailable)
            let described = try await live.http("/api/system/system/endpoints/scheduler:queue", headers: [.flowRequestMethod: "OPEN"]).envelope()
            #expect(described.data?["kind"] == "provider" && described.data?["served"] == false)
            // The reservation's methods and schema hold; a provider registers with the namespace alone.
            try await ScriptedProvider.with(live, registration: #"{"namespace":"scheduler/queue","concurrency":4}"#) { _ in .answer("[]") } _: { _ in
                let (listed, _) = try await Self.call(live, Self.frame("LIST", "scheduler/queue"))
                #expect(listed.success)
                let (invalid, _) = try await Self.call(live, Self.frame("RUN", "scheduler/queue", objectid: "j-1", data: #"{"action":"explode"}"#))
                #expect(invalid.errorcode == .validationFailed)
                let (notServed, _) = try await Self.call(live, Self.frame("CREATE", "scheduler/queue", data: "{}"))
                #expect(notServed.errorcode == .methodNotAllowed)
            }
            // Reserved: still known after its provider left, past any grace period.
            let (after, _) = try await Self.call(live, Self.frame("LIST", "scheduler/queue"))
            #expect(after.errorcode == .providerUnavailable)
        }
    }
}
