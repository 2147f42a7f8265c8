import FlowProtocol
import FlowTestSupport
import Foundation
import HTTPTypes
import NIOCore
import Testing
import WSCore
import HummingbirdTesting
import NIOWebSocket

/// SPEC §11 against the real `flowgate` binary, one class of hostile input at a time (issue 14's
/// list): each test sends the input, checks the answer's error code (or that it came at all),
/// then checks that the daemon still answers an ordinary call within a second and is still
/// running. The same behaviour is tested closer to the code elsewhere; here it is the shipped
/// daemon, with its logs, its configuration from the environment and its own process.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct HostileInputTests {
    static var repository: URL { LiveGateway.repository }

    /// `flowgate serve` on the repository's endpoints and schemas, with `environment` added.
    static func daemon(_ environment: [String: String] = [:], in folder: URL? = nil, endpoints: URL? = nil, schemas: URL? = nil) async throws -> DaemonProcess {
        try await DaemonProcess.start(
            [
                "--endpoints", (endpoints ?? Self.repository.appendingPathComponent("Endpoints")).path,
                "--schemas", (schemas ?? Self.repository.appendingPathComponent("Schemas")).path,
            ],
            in: folder, environment: environment
        )
    }

    /// The daemon still serves: an authenticated call answers within a second, and it runs.
    /// The bound is a stall detector, not a speed check: the hostile inputs here would hold the
    /// daemon for far longer if they stalled it, and a debug daemon on a loaded 2-core CI machine
    /// (every suite, the Autobahn run and the test PostgreSQL at once) once took over a second.
    static func stillServes(_ daemon: DaemonProcess, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let answered = try await Self.within(TestTime.bound(.seconds(3))) {
            try await daemon.http("/api/system/system/endpoints/").envelope().success
        }
        #expect(answered == true, "an ordinary call did not answer within 3 seconds", sourceLocation: sourceLocation)
        #expect(daemon.process.isRunning, sourceLocation: sourceLocation)
    }

    /// `work`'s result, or nil when it did not finish within `limit`.
    static func within<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    static func json(_ body: String) -> [UInt8] { Array(body.utf8) }

    // MARK: 1, 2: schemas

    @Test func cyclicSchemasAreRefusedWhereTheyEnter() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-cycle-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let endpoints = folder.appendingPathComponent("Endpoints")
        let schemas = folder.appendingPathComponent("Schemas")
        try FileManager.default.createDirectory(at: endpoints, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: schemas, withIntermediateDirectories: true)
        try Data(#"{"namespace":"shop/loop","schema":"loop.schema.json","methods":["LIST","CREATE"]}"#.utf8).write(to: endpoints.appendingPathComponent("loop.json"))
        try Data(##"{"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"}]},"b":{"allOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}"##.utf8)
            .write(to: schemas.appendingPathComponent("loop.schema.json"))
        let (status, output) = try await DaemonProcess.run(["check", "--endpoints", endpoints.path, "--schemas", schemas.path])
        #expect(status != 0)
        #expect(output.contains("Schemas/loop.schema.json") && output.contains("/$defs/a/anyOf/0/$ref"), "\(output)")
        await #expect(throws: DaemonProcess.StartFailed.self) { try await Self.daemon(endpoints: endpoints, schemas: schemas).cleanUp() }

        // A provider's registration: refused with the pointer, and the daemon goes on.
        let daemon = try await Self.daemon()
        defer { daemon.cleanUp() }
        try await daemon.webSocket { socket in
            try await socket.send(##"{"method":"CREATE","namespace":"system/providers","requestid":1,"data":{"namespace":"demo/loop","methods":["RUN"],"schema":{"$ref":"#"}}}"##)
            let refused = try await socket.receive()
            #expect(refused.errorcode == .validationFailed && refused.data?["errors"]?.arrayValue?.first?["path"] == "/schema/$ref", "\(refused)")
        }
        try await Self.stillServes(daemon)
    }

    @Test func validationCostIsBounded() async throws {
        let daemon = try await Self.daemon()
        defer { daemon.cleanUp() }
        // 80,000 distinct tags (uniqueItems): hashed, answered, and the daemon is not stalled meanwhile.
        let tags = (0..<80_000).map { "\"t\($0)\"" }.joined(separator: ",")
        let create = Task {
            try await daemon.http("/api/inventory/inventory/device/", method: .post, headers: [.contentType: "application/json"], body: #"{"name":"many","serial":"SN-many","tags":[\#(tags)]}"#)
        }
        try await Self.stillServes(daemon)
        #expect(try await create.value.envelope().success)
        // A provider schema that doubles the work at each of 40 levels: "too complex", at once.
        var definitions: [String] = []
        for index in 0..<40 { definitions.append(##""d\##(index)":{"allOf":[{"$ref":"#/$defs/d\##(index + 1)"},{"$ref":"#/$defs/d\##(index + 1)"}]}"##) }
        definitions.append(#""d40":{"type":"integer"}"#)
        let schema = ##"{"$defs":{\##(definitions.joined(separator: ","))},"$ref":"#/$defs/d0"}"##
        try await daemon.webSocket { socket in
            try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":1,"data":{"namespace":"demo/heavy","methods":["RUN"],"schema":\#(schema),"timeout_ms":1000}}"#)
            #expect(try await socket.receive().success)
            try await socket.send(#"{"method":"RUN","namespace":"demo/heavy","objectid":"x","data":7,"requestid":2}"#)
            let answer = try await socket.receive()
            #expect(answer.errorcode == .validationFailed && answer.message?.contains("too large or too deeply nested") == true, "\(answer)")
            // A pattern that backtracks exponentially elsewhere: linear here.
            try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":3,"data":{"namespace":"demo/regex","methods":["RUN"],"schema":{"pattern":"^(a+)+$"}}}"#)
            #expect(try await socket.receive().success)
            try await socket.send(#"{"method":"RUN","namespace":"demo/regex","objectid":"x","data":"\#(String(repeating: "a", count: 50_000))!","requestid":4}"#)
            #expect(try await socket.receive().errorcode == .validationFailed)
        }
        try await Self.stillServes(daemon)
    }

    // MARK: 3: logins under a burst

    @Test func aBurstOfWrongPasswordsGetsNoMoreThanTheLimit() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_LOGIN_FAILURES_PER_MINUTE": "10"])
        defer { daemon.cleanUp() }
        // The victim is another user: admin's Basic (verified now, then cached) keeps working.
        let user = #"{"username":"victim","password":"victim-password","roles":["reader"]}"#
        #expect(try await daemon.http("/api/auth/auth/users/", method: .post, headers: [.contentType: "application/json"], body: user).envelope().success)
        let codes = try await withThrowingTaskGroup(of: ErrorCode?.self, returning: [ErrorCode?].self) { group in
            for attempt in 0..<60 {
                group.addTask {
                    try await daemon.http(
                        "/api/auth/auth/session/", method: .post, headers: [.anonymous: "1", .contentType: "application/json"],
                        body: #"{"username":"victim","password":"guess-\#(attempt)"}"#
                    ).envelope().errorcode
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let checked = codes.filter { $0 == .unauthenticated }.count
        #expect(checked <= 10 && checked >= 1, "\(checked) guesses checked against a limit of 10")
        #expect(codes.filter { $0 == .rateLimited }.count == 60 - checked)
        try await Self.stillServes(daemon)
    }

    // MARK: 4: logs

    @Test func clientStringsCannotForgeLogLines() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_LOG_LEVEL": "debug"])
        defer { daemon.cleanUp() }
        let forged = "1999-01-01T00:00:00+0000 notice flowgate: flow.audit=login flow.user=admin [FlowAuth] audit"
        let basic = "Basic " + Data("mallory\n\(forged):pw".utf8).base64EncodedString()
        #expect(try await daemon.http("/api/inventory/inventory/device/", headers: [.authorization: basic]).envelope().errorcode == .unauthenticated)
        try await daemon.webSocket { socket in
            try await socket.send(#"{"method":"OPEN","namespace":"inventory/device","objectid":"x","requestid":"r\n\#(forged)"}"#)
            #expect(try await socket.receive().errorcode == .doNotExist)
        }
        try await Self.stillServes(daemon)
        try await Task.sleep(for: .milliseconds(200))
        let lines = daemon.log.split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("1999-01-01") }, "a client string started a log line of its own")
        #expect(daemon.log.contains(#"flow.request.id="r\n1999-01-01T00:00:00+0000 notice flowgate: flow.audit=login"#), "the escaped value is in the log")
        #expect(daemon.log.contains(#"flow.user=mallory\n1999-01-01T00"#), "\(daemon.log.suffix(2000))")
    }

    // MARK: 5, 6: caps and store inputs

    @Test func perPrincipalCollectionsAndListInputsAreCapped() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_MAX_TOKENS_PER_USER": "2", "FLOWGATE_MAX_PROVIDERS_PER_SOCKET": "1"])
        defer { daemon.cleanUp() }
        let json: HTTPFields = [.contentType: "application/json"]
        let scopes = (0..<1000).map { "\"s\($0)/*:LIST\"" }.joined(separator: ",")
        #expect(try await daemon.http("/api/auth/auth/tokens/", method: .post, headers: json, body: #"{"name":"wide","scopes":[\#(scopes)]}"#).envelope().errorcode == .validationFailed)
        for name in ["a", "b"] { #expect(try await daemon.http("/api/auth/auth/tokens/", method: .post, headers: json, body: #"{"name":"\#(name)"}"#).envelope().success) }
        #expect(try await daemon.http("/api/auth/auth/tokens/", method: .post, headers: json, body: #"{"name":"c"}"#).envelope().errorcode == .rateLimited)
        try await daemon.webSocket { socket in
            try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":1,"data":{"namespace":"demo/one","methods":["RUN"]}}"#)
            #expect(try await socket.receive().success)
            try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":2,"data":{"namespace":"demo/two","methods":["RUN"]}}"#)
            #expect(try await socket.receive().errorcode == .rateLimited)
        }
        let filter = (0..<3000).map { "\"f\($0)\":1" }
        let seventeen = filter.prefix(17).joined(separator: ",")
        #expect(try await daemon.http("/api/inventory/inventory/device/", headers: [.flowRequestParameters: "{\"filter\":{\(seventeen)}}"]).envelope().errorcode == .invalidRequest)
        let nul = try await daemon.http("/api/inventory/inventory/device/", headers: [.flowRequestParameters: #"{"search":"core\u0000"}"#])
        #expect(try nul.envelope().errorcode == .invalidRequest)
        try await daemon.webSocket("/ws/inventory/device") { socket in
            try await socket.send(#"{"method":"LIST","requestid":1,"parameters":{"filter":{\#(filter.joined(separator: ","))}}}"#)
            #expect(try await socket.receive().errorcode == .invalidRequest)
        }
        try await Self.stillServes(daemon)
    }

    // MARK: 7: HTTP connections

    @Test func slowAndIdleHTTPConnectionsAreReaped() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_HEAD_TIMEOUT_MS": "500", "FLOWGATE_IDLE_TIMEOUT_MS": "800"])
        defer { daemon.cleanUp() }
        let partial = try await RawSocket.connect(port: daemon.port)
        try await partial.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        #expect(try await partial.waitForClose(timeout: .seconds(10)))
        #expect(partial.text.hasPrefix("HTTP/1.1 408"))
        let idle = try await RawSocket.connect(port: daemon.port)
        #expect(try await idle.waitForClose(timeout: .seconds(10)))
        let large = try await RawSocket.connect(port: daemon.port)
        try await large.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Large: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
        #expect(try await large.waitForClose(timeout: .seconds(10)))
        #expect(large.text.hasPrefix("HTTP/1.1 431"))
        let anonymous = try await RawSocket.connect(port: daemon.port)
        try await anonymous.write("POST /api/inventory/inventory/device/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{")
        #expect(try await anonymous.waitForClose(timeout: .seconds(10)), "the body of a caller nobody knows is not read")
        #expect(anonymous.text.hasPrefix("HTTP/1.1 401"))
        try await Self.stillServes(daemon)
    }

    // MARK: 8: credentials

    @Test func twoCredentialsAreAmbiguousAndBrowsersAreNotPrompted() async throws {
        let daemon = try await Self.daemon()
        defer { daemon.cleanUp() }
        var both = LiveGateway.adminHeaders
        both[.flowAuthToken] = "fgses_whatever"
        let ambiguous = try await daemon.http("/api/inventory/inventory/device/", headers: both)
        #expect(ambiguous.head.status == .badRequest)
        #expect(try ambiguous.envelope().errorcode == .ambiguousRequest)
        let anonymous = try await daemon.http("/api/inventory/inventory/device/", headers: [.anonymous: "1"])
        #expect(anonymous.head.status == .unauthorized && anonymous.head.headerFields[.wwwAuthenticate] == nil)
        try await Self.stillServes(daemon)
    }

    // MARK: 9: providers that lose their scope

    @Test func aProviderLosesItsRegistrationWithItsScope() async throws {
        let daemon = try await Self.daemon()
        defer { daemon.cleanUp() }
        let json: HTTPFields = [.contentType: "application/json"]
        #expect(try await daemon.http("/api/auth/auth/roles/", method: .post, headers: json, body: #"{"name":"prov","scopes":["provide:demo/*"]}"#).envelope().success)
        #expect(try await daemon.http("/api/auth/auth/users/", method: .post, headers: json, body: #"{"username":"pia","password":"pia-password","roles":["prov"]}"#).envelope().success)
        let pia: HTTPFields = [.authorization: "Basic " + Data("pia:pia-password".utf8).base64EncodedString()]
        let close = try await daemon.webSocket(headers: pia) { socket in
            try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":1,"data":{"namespace":"demo/jobs","methods":["LIST"]}}"#)
            #expect(try await socket.receive().success)
            #expect(try await daemon.http("/api/auth/auth/users/pia", method: .put, headers: json, body: #"{"roles":[]}"#).envelope().success)
            try await socket.expectClosedByServer(within: .seconds(5))
        }
        #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4003))
        try await Self.stillServes(daemon)
    }

    // MARK: 12: reads

    /// A LIST that runs past the call's deadline is interrupted (TIMEOUT) and holds no thread
    /// that others need: four of them at once, and an ordinary call still answers.
    @Test func slowReadsAreInterruptedAndStallNobody() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-slowread-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The schema first, from a daemon; then 200,000 objects straight into its file.
        let first = try await Self.daemon(in: folder)
        first.signal(SIGTERM)
        _ = try await first.waitForExit()
        first.cleanUp(keepFolder: true)
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.executemany("INSERT INTO object (collection, id, seq, rev, body) VALUES ('inventory/device', ?, ?, 'r', ?)",
                (("d%d" % n, n, '{"id":"d%d","name":"switch %d","serial":"SN-%d","ports":%d}' % (n, n, n, n % 48)) for n in range(1, 200001)))
            db.execute("INSERT OR REPLACE INTO counter (name, value) VALUES ('object', 200001)")
            db.commit()
            """
        let (status, output) = try await DaemonProcess.runTool(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, folder.appendingPathComponent("data/flowgate.sqlite").path])
        try #require(status == 0, "\(output)")
        let daemon = try await Self.daemon(["FLOWGATE_CALL_TIMEOUT_MS": "100"], in: folder)
        defer { daemon.cleanUp() }
        let slow = #"{"filter":{"ports":47,"missing":"x"},"sort":"serial","order":"desc"}"#
        let lists = (0..<4).map { _ in
            Task { try await daemon.http("/api/inventory/inventory/device/", headers: [.flowRequestParameters: slow]).envelope().errorcode }
        }
        let answered = try await Self.within(TestTime.bound(.seconds(1))) { try await daemon.http("/api/inventory/inventory/device/d7").envelope().success }
        #expect(answered == true, "an OPEN waited behind slow LISTs")
        for list in lists { #expect(try await list.value == .timeout) }
        try await Self.stillServes(daemon)
    }
}
