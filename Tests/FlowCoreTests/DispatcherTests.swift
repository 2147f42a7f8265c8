import FlowCore
import FlowProtocol
import FlowTestSupport
import Logging
import Testing

@Suite struct DispatcherTests {
    let registry = EndpointRegistry()
    let echo = EchoEndpoint()
    let log = RecordingLogHandler.Store()
    let dispatcher: Dispatcher

    init() throws {
        try self.registry.register(self.echo)
        try self.registry.register(EchoEndpoint("test/public", methods: [.list, .create], publicMethods: [.create]))
        try self.registry.register(EchoEndpoint("other/thing", methods: [.list]))
        self.dispatcher = Dispatcher(
            registry: self.registry,
            authenticator: TokenTableAuthenticator(tokens: ["admin-token": .testAdmin, "reader-token": .testReader]),
            policy: ExactScopePolicy(),
            // Far above the 50-100 ms calls that must succeed (a loaded CI machine delayed one past
            // 200 ms once), far below the 5 s calls that must time out.
            configuration: .init(callTimeout: .seconds(2)),
            logger: self.log.logger()
        )
    }

    func call(_ envelope: Envelope, credential: Credential? = .token("admin-token"), application: String? = nil) async -> DispatchResult {
        await self.dispatcher.dispatch(CallRequest(envelope: envelope, origin: CallOrigin(transport: .websocket, credential: credential), application: application))
    }

    /// SPEC §3 step 9: the endpoint's schema is checked by the dispatcher, after the checks
    /// before it and before the handler, for every endpoint kind alike.
    @Test func dataIsValidatedBeforeTheHandler() async throws {
        let validated = EchoEndpoint("test/validated", validator: NameRequired())
        try self.registry.register(validated)
        let namespace = Namespace("test/validated")
        let bad = await self.call(Envelope(method: .create, namespace: namespace, data: ["name": 3]))
        #expect(bad.response.errorcode == .validationFailed)
        #expect(bad.response.data == ["errors": [["path": "/name", "message": "is required"]]])
        #expect(validated.totalCalls == 0, "the handler ran on data that fails its schema")
        // Earlier steps win: objectid (8) before the schema (9), authorization (6) before both.
        #expect(await self.call(Envelope(method: .run, namespace: namespace, data: [:])).response.errorcode == .objectIDRequired)
        // Methods without data are not checked; good data reaches the handler.
        #expect(await self.call(Envelope(method: .list, namespace: namespace)).response.success)
        #expect(await self.call(Envelope(method: .update, namespace: namespace, objectid: "1", data: ["name": "x"])).response.success)
        #expect(validated.totalCalls == 2)
    }

    @Test func successCarriesHandlerDataAndRequestID() async {
        let result = await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "42", requestid: .integer(9)))
        #expect(result.response.success)
        #expect(result.response.data?["objectid"] == "42")
        #expect(result.response.data?["user"] == "admin")
        #expect(result.response.requestid == .integer(9))
        #expect(result.username == "admin")
    }

    /// SPEC §3 "which error wins", step by step.
    @Test func checkOrder() async {
        let unknown = Namespace("nope/nothing")
        // (4) before (5): an anonymous caller learns nothing about what exists.
        #expect(await self.call(Envelope(method: .list, namespace: unknown), credential: nil).response.errorcode == .unauthenticated)
        #expect(await self.call(Envelope(method: .list, namespace: unknown), credential: .token("wrong")).response.errorcode == .unauthenticated)
        // (5) for an authenticated caller.
        #expect(await self.call(Envelope(method: .list, namespace: unknown)).response.errorcode == .noSuchEndpoint)
        // (6) before (7) and (8).
        let reader = Credential.token("reader-token")
        #expect(await self.call(Envelope(method: .create, namespace: Namespace("test/echo")), credential: reader).response.errorcode == .forbidden)
        #expect(await self.call(Envelope(method: .list, namespace: Namespace("test/echo")), credential: reader).response.success)
        // (7) before (8).
        #expect(await self.call(Envelope(method: .open, namespace: Namespace("other/thing"))).response.errorcode == .methodNotAllowed)
        // (8)
        #expect(await self.call(Envelope(method: .open, namespace: Namespace("test/echo"))).response.errorcode == .objectIDRequired)
        #expect(await self.call(Envelope(method: .update, namespace: Namespace("test/echo"), objectid: "1")).response.errorcode == .dataRequired)
        #expect(await self.call(Envelope(method: .run, namespace: Namespace("test/echo"), objectid: "1")).response.errorcode == .dataRequired)
        #expect(await self.call(Envelope(method: .create, namespace: Namespace("test/echo"))).response.errorcode == .dataRequired)
        #expect(await self.call(Envelope(method: .list, namespace: Namespace("test/echo"), objectid: "1")).response.errorcode == .invalidRequest)
        #expect(await self.call(Envelope(method: .create, namespace: Namespace("test/echo"), objectid: "1", data: [:])).response.errorcode == .invalidRequest)
        // (2) a namespace is needed at all.
        #expect(await self.call(Envelope(method: .list)).response.errorcode == .invalidRequest)
    }

    @Test func dataIsPassedOnlyToMethodsThatTakeIt() async {
        let result = await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", data: ["x": 1]))
        #expect(result.response.data?["data"] == .null)
    }

    @Test func publicMethodsNeedNoCredentialAndIgnoreAStaleOne() async {
        let create = Envelope(method: .create, namespace: Namespace("test/public"), data: ["a": 1])
        let anonymous = await self.call(create, credential: nil)
        #expect(anonymous.response.success)
        #expect(anonymous.username == nil)
        #expect(anonymous.response.data?["user"] == .null)
        #expect(await self.call(create, credential: .token("revoked")).response.success)
        #expect(await self.call(Envelope(method: .list, namespace: Namespace("test/public")), credential: nil).response.errorcode == .unauthenticated)
    }

    @Test func applicationConstraintFromTheURL() async {
        let envelope = Envelope(method: .list, namespace: Namespace("test/echo"))
        #expect(await self.call(envelope, application: "test").response.success)
        #expect(await self.call(envelope, application: "other").response.errorcode == .noSuchEndpoint)
    }

    @Test func unknownErrorsBecomeInternalErrorWithDetailOnlyInTheLog() async throws {
        let result = await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["fail": "internal"]))
        let response = result.response
        #expect(response.errorcode == .internalError)
        #expect(response.message == "Internal error")
        let bytes = String(decoding: response.encoded(), as: UTF8.self)
        #expect(!bytes.contains("SELECT"))
        #expect(!bytes.contains("sqlite"))
        let errorid = try #require(response.errorid)
        #expect(errorid.count == 36 && errorid == errorid.lowercased())
        let line = try #require(self.log.all.first { $0.contains(errorid) })
        #expect(line.contains("SELECT * FROM secrets"))
        #expect(line.contains("flow.namespace=test/echo"))
    }

    @Test func everyFailureHasAFreshErrorIDAndFlowErrorsKeepTheirMessage() async {
        let first = await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["fail": "missing"]))
        let second = await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["fail": "missing"]))
        #expect(first.response.errorcode == .doNotExist)
        #expect(first.response.message == "Object does not exist")
        #expect(first.response.errorid != nil && first.response.errorid != second.response.errorid)
        #expect(first.username == "admin")
    }

    @Test func slowHandlersTimeOut() async {
        let result = await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["sleep_ms": 5_000]))
        #expect(result.response.errorcode == .timeout)
        #expect(result.response.message == "The endpoint did not answer within 2 s")
        #expect(self.dispatcher.callsInFlight == 0)
        // The timeout cancels the call, not the task that dispatched it: the next call on it works.
        #expect(!Task.isCancelled)
        #expect(await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "2")).response.success)
    }

    /// SPEC §11: a handler that succeeds after its deadline (a write that committed) is not
    /// reported as TIMEOUT, or the client would retry it and write twice.
    @Test func aLateSuccessIsNotATimeout() async {
        let result = await self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["commit_ms": 2_600]))
        #expect(result.response.success, "\(result.response)")
        #expect(result.response.data?["objectid"] == "1")
    }

    /// In a task of its own the call runs in the calling task: a timeout cancels that task,
    /// and the TIMEOUT answer is still delivered.
    @Test func callsInTheirOwnTaskTimeOutToo() async {
        let request = CallRequest(
            envelope: Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["sleep_ms": 5_000]),
            origin: CallOrigin(transport: .websocket, credential: .token("admin-token"))
        )
        let (response, cancelled) = await Task {
            await self.dispatcher.dispatch(.call(request), from: CallSource(transport: .websocket, tasking: .dedicated)) { ($0.response, Task.isCancelled) }
        }.value
        #expect(response.errorcode == .timeout)
        #expect(cancelled)
        #expect(self.dispatcher.callsInFlight == 0)
    }

    /// A call cancelled by its caller (a closed socket) is no internal error worth an error log.
    @Test func cancelledCallsAreNotLoggedAsErrors() async {
        let request = CallRequest(
            envelope: Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["sleep_ms": 5_000]),
            origin: CallOrigin(transport: .websocket, credential: .token("admin-token"))
        )
        let task = Task { await self.dispatcher.dispatch(.call(request), from: CallSource(transport: .websocket, tasking: .dedicated)) { $0.response } }
        while self.echo.runningCalls == 0 { await Task.yield() }
        task.cancel()
        let response = await task.value
        #expect(response.message == "The call was cancelled")
        #expect(!self.log.all.contains { $0.hasPrefix("error") })
    }

    @Test func concurrentCallsTimeOutIndependently() async {
        async let slow = self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["sleep_ms": 5_000]))
        async let quick = self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "2", parameters: ["sleep_ms": 50]))
        let (slowResult, quickResult) = await (slow, quick)
        #expect(slowResult.response.errorcode == .timeout)
        #expect(quickResult.response.success)
    }

    @Test func drainingRefusesNewCallsAndWaitsForRunningOnes() async {
        // Long enough that a loaded machine checks before it ends, short of the 2 s timeout.
        async let slow = self.call(Envelope(method: .open, namespace: Namespace("test/echo"), objectid: "1", parameters: ["sleep_ms": 1_000]))
        while self.echo.totalCalls == 0 { await Task.yield() }
        self.dispatcher.beginDraining()
        #expect(await self.call(Envelope(method: .list, namespace: Namespace("test/echo"))).response.errorcode == .shuttingDown)
        #expect(self.dispatcher.callsInFlight == 1)
        #expect(await self.dispatcher.waitUntilIdle(deadline: .now + .seconds(5)))
        #expect(await slow.response.success)
    }

    /// A drain must wait for answers to be sent, not only computed.
    @Test func callsCountAsInFlightUntilTheirAnswerIsDelivered() async {
        let request = CallRequest(
            envelope: Envelope(method: .list, namespace: Namespace("test/echo")),
            origin: CallOrigin(transport: .websocket, credential: .token("admin-token"))
        )
        let during = await self.dispatcher.dispatch(.call(request), from: CallSource(transport: .websocket, tasking: .shared(hangUp: nil))) { result in
            (result.response.success, self.dispatcher.callsInFlight)
        }
        #expect(during == (true, 1))
        #expect(self.dispatcher.callsInFlight == 0)
    }

    @Test func tokensNeverReachTheLog() async {
        _ = await self.call(Envelope(method: .list, namespace: Namespace("nope/x")), credential: .token("wrong-secret-token"))
        _ = await self.call(Envelope(method: .list, namespace: Namespace("nope/x")), credential: .basic(username: "u", password: "hunter2"))
        #expect(!self.log.all.isEmpty)
        #expect(!self.log.all.contains { $0.contains("wrong-secret-token") || $0.contains("hunter2") })
    }
}

/// Logs through the context's logger, so tests can see what metadata a handler's log line gets.
struct LoggingEndpoint: Endpoint {
    let definition = EndpointDefinition(namespace: Namespace("test/logging")!, title: "Logging", methods: [.list])
    func handle(_ call: Call, context: CallContext) async throws -> Reply {
        context.logger.info("handled")
        return Reply()
    }
}

@Suite struct CallContextTests {
    @Test func handlerLogLinesCarryTheCallsMetadata() async throws {
        let log = RecordingLogHandler.Store()
        let registry = EndpointRegistry()
        try registry.register(LoggingEndpoint())
        let dispatcher = Dispatcher(registry: registry, authenticator: OpenAccessAuthenticator(), policy: OpenAccessPolicy(), logger: log.logger())
        let envelope = Envelope(method: .list, namespace: Namespace("test/logging"), requestid: .string("r-5"))
        #expect(await dispatcher.dispatch(CallRequest(envelope: envelope, origin: CallOrigin(transport: .http))).response.success)
        let line = try #require(log.all.first { $0.contains("handled") })
        #expect(line.contains("flow.namespace=test/logging"))
        #expect(line.contains("flow.method=LIST"))
        #expect(line.contains("flow.request.id=r-5"))
    }
}

@Suite struct RegistryTests {
    @Test func namespacesAreUnique() throws {
        let registry = EndpointRegistry()
        try registry.register(EchoEndpoint("a/b"))
        #expect(throws: RegistryError.namespaceTaken(Namespace("a/b")!)) { try registry.register(EchoEndpoint("/a/b/")) }
        #expect(throws: RegistryError.self) { try registry.register(EchoEndpoint("c/d", application: "Bad App")) }
        #expect(registry.contains(Namespace("a/b")!, application: "a"))
        #expect(!registry.contains(Namespace("a/b")!, application: "b"))
        #expect(registry.unregister(Namespace("a/b")!) != nil)
        #expect(registry.count == 0)
    }

    @Test func systemEndpointsDescribesTheRegistry() async throws {
        let registry = EndpointRegistry()
        try registry.register(EchoEndpoint("test/echo", methods: [.list, .open], publicMethods: [.list]))
        try registry.register(SystemEndpointsEndpoint(registry: registry))
        let dispatcher = Dispatcher(registry: registry, authenticator: OpenAccessAuthenticator(), policy: OpenAccessPolicy(), logger: .silent)
        let origin = CallOrigin(transport: .http)
        let list = await dispatcher.dispatch(CallRequest(envelope: Envelope(method: .list, namespace: Namespace("system/endpoints")), origin: origin))
        let items = try #require(list.response.data?.arrayValue)
        #expect(items.compactMap { $0["namespace"]?.stringValue } == ["system/endpoints", "test/echo"])
        #expect(items[1] == [
            "namespace": "test/echo", "application": "test", "title": "Echo", "kind": "in-process",
            "methods": ["LIST", "OPEN"], "public": ["LIST"], "schema": .null, "served": true, "providers": 0,
        ])
        let open = await dispatcher.dispatch(CallRequest(envelope: Envelope(method: .open, namespace: Namespace("system/endpoints"), objectid: "test:echo"), origin: origin))
        #expect(open.response.data?["namespace"] == "test/echo")
        let missing = await dispatcher.dispatch(CallRequest(envelope: Envelope(method: .open, namespace: Namespace("system/endpoints"), objectid: "no:such"), origin: origin))
        #expect(missing.response.errorcode == .doNotExist)
    }
}
