import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite(.serialized, .timeLimit(.minutes(2)))
struct HTTPTransportTests {
    static let endpoints: [any Endpoint] = [
        EchoEndpoint("test/echo"), EchoEndpoint("test/deep"), EchoEndpoint("test/deep/thing"),
        EchoEndpoint("scheduler/queue", application: "scheduler"),
    ]

    /// A timed-out call answers 504 TIMEOUT; the kept-alive connection serves the next request.
    @Test func timedOutCallsLeaveTheConnectionWorking() async throws {
        try await LiveGateway.run(configure: { $0.callTimeout = .milliseconds(300) }, endpoints: Self.endpoints) { live in
            let client = TestClient(host: "127.0.0.1", port: live.port)
            client.connect()
            defer { Task { try? await client.shutdown() } }
            let slow = try await client.execute(.init("/api/test/test/echo/a?method=OPEN&parameters=%7B%22sleep_ms%22%3A5000%7D", method: .get))
            #expect(slow.head.status == .gatewayTimeout)
            #expect(try slow.envelope().errorcode == .timeout)
            let next = try await client.execute(.init("/api/test/test/echo/b?method=OPEN", method: .get))
            #expect(next.head.status == .ok)
            #expect(try next.envelope().data?["objectid"] == "b")
        }
    }

    /// The seed's own example: `GET /api/<app>/<ns>` with the object id and method in headers.
    @Test func seedExampleWithHeaders() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            let response = try await live.http(
                "/api/test/test/echo",
                headers: [.flowRequestObjectID: "3a472a78-4e3e-4858-8acc-eb754f9d1328", .flowRequestMethod: "OPEN"]
            )
            #expect(response.head.status == .ok)
            #expect(response.headers[.contentType] == "application/json; charset=utf-8")
            let envelope = try response.envelope()
            #expect(envelope.data?["method"] == "OPEN")
            #expect(envelope.data?["objectid"] == "3a472a78-4e3e-4858-8acc-eb754f9d1328")
            #expect(response.headers[.flowUser] == nil)
        }
    }

    @Test func pathResolutionAndTheTrailingSlashRule() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            func call(_ uri: String) async throws -> Response { try await live.http(uri).envelope() }
            // Trailing slash: never an object id.
            var response = try await call("/api/test/test/echo/")
            #expect(response.data?["method"] == "LIST")
            #expect(response.data?["objectid"] == .null)
            // Without it, the last segment is the object id (percent-decoded) unless the whole path is a namespace.
            response = try await call("/api/test/test/echo/a%20b%3Fc")
            #expect(response.data?["method"] == "OPEN")
            #expect(response.data?["objectid"] == "a b?c")
            response = try await call("/api/test/test/deep/thing")
            #expect(response.data?["namespace"] == "test/deep/thing")
            #expect(response.data?["method"] == "LIST")
            response = try await call("/api/test/test/deep/other")
            #expect(response.data?["namespace"] == "test/deep")
            #expect(response.data?["objectid"] == "other")
            response = try await call("/api/test/test/deep/thing/x1")
            #expect(response.data?["namespace"] == "test/deep/thing")
            #expect(response.data?["objectid"] == "x1")
            // The application must own the namespace.
            response = try await call("/api/scheduler/scheduler/queue/")
            #expect(response.success)
            let wrongApplication = try await live.http("/api/test/scheduler/queue/")
            #expect(wrongApplication.head.status == .notFound)
            #expect(try wrongApplication.envelope().errorcode == .noSuchEndpoint)
            #expect(try await call("/api/test/test/nothing/").errorcode == .noSuchEndpoint)
            #expect(try await call("/api/test/no/such/thing/x").errorcode == .noSuchEndpoint)
            // Namespace from a header when the URL is just the application.
            let byHeader = try await live.http("/api/test/", headers: [.flowRequestNamespace: "test/echo"]).envelope()
            #expect(byHeader.data?["namespace"] == "test/echo")
            #expect(try await live.http("/api/scheduler/", headers: [.flowRequestNamespace: "test/echo"]).envelope().errorcode == .noSuchEndpoint)
        }
    }

    @Test func queryStringCarriesTheFields() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            let response = try await live.http("/api/test/?namespace=test/echo&method=INDEX&objectid=o%2F1x&requestid=q-1&parameters=%7B%22limit%22%3A5%7D")
            let envelope = try response.envelope()
            #expect(envelope.errorcode == .invalidRequest)  // '/' is not allowed in an object id
            let ok = try await live.http("/api/test/?namespace=test/echo&method=INDEX&objectid=o1&requestid=q-1&parameters=%7B%22limit%22%3A5%7D")
            let body = try ok.envelope()
            #expect(body.data?["method"] == "INDEX")
            #expect(body.data?["objectid"] == "o1")
            #expect(body.data?["parameters"] == ["limit": 5])
            #expect(body.requestid == .string("q-1"))
            #expect(ok.headers[.flowRequestID] == "q-1")
            let longID = try await live.http("/api/test/test/echo/", headers: [.flowRequestID: String(repeating: "r", count: 129)])
            #expect(longID.head.status == .badRequest)
            #expect(try longID.envelope().errorcode == .invalidRequest)
            let plain = try await live.http("/api/test/test/echo/?parameters=just%20text").envelope()
            #expect(plain.data?["parameters"] == "just text")
            let header = try await live.http("/api/test/test/echo/", headers: [.flowRequestParameters: #"{"a":[1,2]}"#]).envelope()
            #expect(header.data?["parameters"] == ["a": [1, 2]])
        }
    }

    @Test func ambiguousRequests() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            let cases: [(String, HTTPFields)] = [
                ("/api/test/test/echo/abc", [.flowRequestObjectID: "def"]),
                ("/api/test/test/echo/abc?objectid=xyz", [:]),
                ("/api/test/test/echo/?method=LIST", [.flowRequestMethod: "OPEN"]),
                ("/api/test/test/echo/", [.flowRequestNamespace: "test/deep"]),
                ("/api/test/test/echo/?requestid=a", [.flowRequestID: "b"]),
                ("/api/test/test/echo/?token=a", [.flowAuthToken: "b"]),
                ("/api/test/test/echo/", [.flowAuthToken: "a", .authorization: "Bearer b"]),
                ("/api/test/test/echo/?parameters=a", [.flowRequestParameters: "b"]),
            ]
            for (uri, headers) in cases {
                let response = try await live.http(uri, headers: headers)
                #expect(response.head.status == .badRequest, "\(uri) \(headers)")
                #expect(try response.envelope().errorcode == .ambiguousRequest, "\(uri) \(headers)")
            }
            // The same value in two places is not ambiguous.
            let same = try await live.http("/api/test/test/echo/abc?objectid=abc", headers: [.flowRequestObjectID: "abc"])
            #expect(try same.envelope().success)
        }
    }

    @Test func verbTable() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            func method(_ verb: HTTPRequest.Method, _ uri: String, _ headers: HTTPFields = [:], body: String? = nil) async throws -> Response {
                try await live.http(uri, method: verb, headers: headers, body: body).envelope()
            }
            #expect(try await method(.get, "/api/test/test/echo/").data?["method"] == "LIST")
            #expect(try await method(.get, "/api/test/test/echo/1").data?["method"] == "OPEN")
            #expect(try await method(.get, "/api/test/test/echo/1", [.flowRequestMethod: "DELETE"]).data?["method"] == "DELETE")
            #expect(try await method(.post, "/api/test/test/echo/", body: "{}").data?["method"] == "CREATE")
            #expect(try await method(.post, "/api/test/test/echo/1", body: "{}").data?["method"] == "UPDATE")
            #expect(try await method(.post, "/api/test/test/echo/1", [.flowRequestMethod: "RUN"], body: "{}").data?["method"] == "RUN")
            #expect(try await method(.put, "/api/test/test/echo/1", body: "{}").data?["method"] == "UPDATE")
            #expect(try await method(.patch, "/api/test/test/echo/1", body: "{}").data?["method"] == "UPDATE")
            #expect(try await method(.delete, "/api/test/test/echo/1").data?["method"] == "DELETE")
            let mismatches: [(HTTPRequest.Method, String)] = [
                (.get, "CREATE"), (.get, "UPDATE"), (.get, "RUN"), (.post, "LIST"), (.post, "OPEN"), (.post, "DELETE"),
                (.put, "LIST"), (.put, "CREATE"), (.patch, "DELETE"), (.delete, "OPEN"), (.delete, "LIST"),
            ]
            for (verb, name) in mismatches {
                let response = try await live.http("/api/test/test/echo/1", method: verb, headers: [.flowRequestMethod: name], body: "{}")
                #expect(response.head.status == .methodNotAllowed, "\(verb) \(name)")
                #expect(try response.envelope().errorcode == .methodNotAllowed, "\(verb) \(name)")
            }
            let head = try await live.http("/api/test/test/echo/1", method: .init("TRACE")!)
            #expect(head.head.status == .methodNotAllowed)
            let unknown = try await live.http("/api/test/test/echo/1", headers: [.flowRequestMethod: "FETCH"])
            #expect(try unknown.envelope().errorcode == .unknownMethod)
        }
    }

    @Test func jsonAndFormBodies() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            let json = try await live.http("/api/test/test/echo/", method: .post, headers: [.contentType: "application/json"], body: #"{"name":"core","ports":48}"#)
            #expect(try json.envelope().data?["data"] == ["name": "core", "ports": 48])
            let form = try await live.http(
                "/api/test/test/echo/", method: .post, headers: [.contentType: "application/x-www-form-urlencoded; charset=utf-8"],
                body: "name=core+switch&site=HQ%2F1&empty="
            )
            #expect(try form.envelope().data?["data"] == ["name": "core switch", "site": "HQ/1", "empty": ""])
            // curl -d sends JSON labelled as a form: it is read as JSON.
            let curlStyle = try await live.http(
                "/api/test/test/echo/", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: #" {"name":"core","n":[1]}"#
            )
            #expect(try curlStyle.envelope().data?["data"] == ["name": "core", "n": [1]])
            let formThatStartsWithABrace = try await live.http(
                "/api/test/test/echo/", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: "{a=b"
            )
            #expect(try formThatStartsWithABrace.envelope().data?["data"] == ["{a": "b"])
            let badForm = try await live.http(
                "/api/test/test/echo/", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: "name=%zz"
            )
            #expect(badForm.head.status == .badRequest)
            #expect(try badForm.envelope().errorcode == .invalidRequest)
            let noBody = try await live.http("/api/test/test/echo/", method: .post)
            #expect(noBody.head.status == .badRequest)
            #expect(try noBody.envelope().errorcode == .dataRequired)
            let broken = try await live.http("/api/test/test/echo/", method: .post, headers: [.flowRequestID: "b1"], body: #"{"name":"#)
            #expect(broken.head.status == .badRequest)
            #expect(try broken.envelope().errorcode == .invalidJSON)
            #expect(try broken.envelope().requestid == .string("b1"))
            let notUTF8 = try await live.http("/api/test/test/echo/", method: .post, bytes: [0x22, 0xFF, 0xFE, 0x22])
            #expect(try notUTF8.envelope().errorcode == .invalidJSON)
            let tooDeep = try await live.http("/api/test/test/echo/", method: .post, body: String(repeating: "[", count: 65) + String(repeating: "]", count: 65))
            #expect(try tooDeep.envelope().errorcode == .invalidJSON)
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        try await LiveGateway.run(configure: { $0.maxMessageBytes = 16 * 1024 }, endpoints: Self.endpoints) { live in
            let big = #"{"a":""# + String(repeating: "x", count: 16 * 1024) + "\"}"
            let response = try await live.http("/api/test/test/echo/", method: .post, body: big)
            #expect(response.head.status == .contentTooLarge)
            let envelope = try response.envelope()
            #expect(envelope.errorcode == .payloadTooLarge)
            #expect(response.headers[.flowErrorID] == envelope.errorid)
            #expect(try await live.http("/api/test/test/echo/", method: .post, body: "{}").envelope().success)
        }
    }

    @Test func failureHeadersAndStatusMapping() async throws {
        let authenticator = TokenTableAuthenticator(
            tokens: ["admin-token": .testAdmin, "reader-token": .testReader],
            users: ["alice": (password: "wonderland", identity: .testAdmin)]
        )
        try await LiveGateway.run(endpoints: Self.endpoints, authenticator: authenticator, policy: ExactScopePolicy()) { live in
            let anonymous = try await live.http("/api/test/test/echo/", headers: [.flowRequestID: "r9"])
            #expect(anonymous.head.status == .unauthorized)
            // No challenge unless the request asked for Basic: a browser is never prompted (SPEC §6.4).
            #expect(anonymous.headers[.wwwAuthenticate] == nil)
            #expect(anonymous.headers[.flowRequestID] == "r9")
            let failure = try anonymous.envelope()
            #expect(failure.errorcode == .unauthenticated)
            #expect(anonymous.headers[.flowErrorID] == failure.errorid)
            #expect(anonymous.headers[.flowUser] == nil)

            let admin = try await live.http("/api/test/test/echo/", headers: [.authorization: "Bearer admin-token"])
            #expect(admin.head.status == .ok)
            #expect(admin.headers[.flowUser] == "admin")
            #expect(admin.headers[.flowErrorID] == nil)

            let basic = try await live.http("/api/test/test/echo/", headers: [.authorization: "Basic YWxpY2U6d29uZGVybGFuZA=="])
            #expect(basic.headers[.flowUser] == "admin")
            let wrongPassword = try await live.http("/api/test/test/echo/", headers: [.authorization: "Basic YWxpY2U6bm9wZQ=="])
            #expect(wrongPassword.head.status == .unauthorized)
            #expect(wrongPassword.headers[.wwwAuthenticate] == #"Basic realm="flowgate""#)
            let wrongToken = try await live.http("/api/test/test/echo/", headers: [.authorization: "Bearer nope"])
            #expect(wrongToken.head.status == .unauthorized && wrongToken.headers[.wwwAuthenticate] == nil)

            // Two different credentials are ambiguous, never "pick the valid one" (SPEC §6.4).
            var both = HTTPFields([HTTPField(name: .authorization, value: "Basic YWxpY2U6d29uZGVybGFuZA==")])
            both[.flowAuthToken] = "admin-token"
            let ambiguous = try await live.http("/api/test/test/echo/", headers: both)
            #expect(ambiguous.head.status == .badRequest)
            #expect(try ambiguous.envelope().errorcode == .ambiguousRequest)
            let withQueryToken = try await live.http("/api/test/test/echo/?token=reader-token", headers: [.authorization: "Basic YWxpY2U6d29uZGVybGFuZA=="])
            #expect(try withQueryToken.envelope().errorcode == .ambiguousRequest)
            var twoBasics = HTTPFields([HTTPField(name: .authorization, value: "Basic YWxpY2U6d29uZGVybGFuZA==")])
            twoBasics.append(HTTPField(name: .authorization, value: "Basic YWxpY2U6bm9wZQ=="))
            #expect(try await live.http("/api/test/test/echo/", headers: twoBasics).envelope().errorcode == .ambiguousRequest)
            // The same token twice is one credential; an empty token is none (SPEC §2).
            #expect(try await live.http("/api/test/test/echo/?token=admin-token", headers: [.flowAuthToken: "admin-token"]).envelope().success)
            var emptyToken = HTTPFields([HTTPField(name: .authorization, value: "Basic YWxpY2U6d29uZGVybGFuZA==")])
            emptyToken[.flowAuthToken] = ""
            #expect(try await live.http("/api/test/test/echo/?token=", headers: emptyToken).envelope().success)
            let malformedBasic = try await live.http("/api/test/test/echo/", headers: [.authorization: "Basic !!not-base64"])
            #expect(malformedBasic.head.status == .unauthorized)
            #expect(try malformedBasic.envelope().errorcode == .unauthenticated)
            #expect(malformedBasic.headers[.wwwAuthenticate] == #"Basic realm="flowgate""#)

            let forbidden = try await live.http("/api/test/test/echo/", method: .post, headers: [.flowAuthToken: "reader-token"], body: "{}")
            #expect(forbidden.head.status == .forbidden)
            #expect(forbidden.headers[.flowUser] == "reader")
            #expect(try forbidden.envelope().errorcode == .forbidden)

            let missing = try await live.http("/api/test/test/echo/1?token=admin-token&parameters=%7B%22fail%22%3A%22missing%22%7D")
            #expect(missing.head.status == .notFound)
            #expect(try missing.envelope().errorcode == .doNotExist)
            let crashed = try await live.http("/api/test/test/echo/1?token=admin-token&parameters=%7B%22fail%22%3A%22internal%22%7D")
            #expect(crashed.head.status == .internalServerError)
            #expect(!crashed.bodyText.contains("SELECT"))
        }
    }

    @Test func cors() async throws {
        try await LiveGateway.run(configure: { $0.corsOrigins = ["https://dash.example"] }, endpoints: Self.endpoints) { live in
            let allowed = try await live.http("/api/test/test/echo/", headers: [.origin: "https://dash.example"])
            #expect(allowed.headers[.accessControlAllowOrigin] == "https://dash.example")
            #expect(allowed.headers[.accessControlExposeHeaders]?.contains("Flow-Error-Id") == true)
            let other = try await live.http("/api/test/test/echo/", headers: [.origin: "https://evil.example"])
            #expect(other.headers[.accessControlAllowOrigin] == nil)
            let preflight = try await live.http(
                "/api/test/test/echo/1", method: .options,
                headers: [.origin: "https://dash.example", .accessControlRequestMethod: "PUT", .accessControlRequestHeaders: "flow-auth-token, content-type"]
            )
            #expect(preflight.head.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://dash.example")
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("PUT") == true)
            #expect(preflight.headers[.accessControlAllowHeaders] == "flow-auth-token, content-type")
        }
    }

    @Test func ifMatchBecomesParametersRev() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            let response = try await live.http("/api/test/test/echo/1", method: .put, headers: [.ifMatch: "\"r-7\""], body: "{}")
            #expect(try response.envelope().data?["parameters"] == ["rev": "r-7"])
            let conflicting = try await live.http(
                "/api/test/test/echo/1", method: .put, headers: [.ifMatch: "r-7", .flowRequestParameters: #"{"rev":"r-8"}"#], body: "{}"
            )
            #expect(try conflicting.envelope().errorcode == .ambiguousRequest)
            let withStringParameters = try await live.http(
                "/api/test/test/echo/1", method: .put, headers: [.ifMatch: "r-7", .flowRequestParameters: "plain"], body: "{}"
            )
            #expect(try withStringParameters.envelope().errorcode == .ambiguousRequest)
        }
    }

    @Test func healthAndReadiness() async throws {
        try await LiveGateway.run { live in
            let health = try await live.http("/healthz")
            #expect(health.head.status == .ok)
            #expect(health.bodyText == #"{"status":"ok"}"#)
            let ready = try await live.http("/readyz")
            #expect(ready.head.status == .ok)
            #expect(ready.bodyText.contains(#""ready":true"#))
            let plainGet = try await live.http("/ws")
            #expect(plainGet.head.status == .upgradeRequired)
        }
    }

    /// The WS and HTTP answers to the same call are the same bytes.
    @Test func sameBytesOverBothTransports() async throws {
        try await LiveGateway.run(endpoints: Self.endpoints) { live in
            let frames = [
                (#"{"method":"LIST","namespace":"system/endpoints","requestid":"same"}"#, "/api/system/system/endpoints/", HTTPFields([HTTPField(name: .flowRequestID, value: "same")])),
                (#"{"method":"OPEN","namespace":"test/echo","objectid":"x y","requestid":"s2","parameters":{"k":"v"}}"#, "/api/test/test/echo/x%20y?requestid=s2&parameters=%7B%22k%22%3A%22v%22%7D", HTTPFields()),
            ]
            for (frame, uri, headers) in frames {
                let overHTTP = try await live.http(uri, headers: headers).bodyText
                let overWS = Locked<String?>(nil)
                try await live.webSocket { socket in
                    try await socket.send(frame)
                    let text = try await socket.receiveText()
                    overWS.withLock { $0 = text }
                }
                #expect(overWS.withLock { $0 } == overHTTP)
                #expect(overHTTP.contains(#""success":true"#))
            }
            // Failures too, apart from the fresh errorid.
            let httpFailure = try await live.http("/api/test/test/echo/", headers: [.flowRequestMethod: "OPEN"]).envelope()
            let wsFailure = Locked<Response?>(nil)
            try await live.webSocket { socket in
                try await socket.send(#"{"method":"OPEN","namespace":"test/echo"}"#)
                let response = try await socket.receive()
                wsFailure.withLock { $0 = response }
            }
            var ws = try #require(wsFailure.withLock { $0 })
            var http = httpFailure
            #expect(ws.errorid != http.errorid)
            ws.errorid = nil
            http.errorid = nil
            #expect(ws == http)
        }
    }
}
