import FlowProtocol
import Foundation
import HTTPTypes
import NIOWebSocket
import WSClient
import WSCore

/// A provider that speaks SPEC §5.4's raw frames over a real WebSocket and answers each call as
/// its script says — including the ways a provider misbehaves: silence, garbage, a cut socket.
/// Everything it was sent is recorded for the test to inspect.
final class ScriptedProvider: Sendable {
    /// What to do with one call.
    enum Action: Sendable {
        /// Answer with success and this `data` (JSON text).
        case answer(String)
        /// Send this text; `$CALL` becomes the call id.
        case raw(String)
        /// Never answer.
        case silence
        /// Close the socket (the provider dies mid-call).
        case close
        /// Do `action` after `delay`, while other calls go on.
        indirect case after(Duration, Action)
    }

    let name: String
    private let received = Locked<[JSONObject]>([])
    private let outbound = Locked<WebSocketOutboundWriter?>(nil)
    /// The registration's id, once registered.
    let registrationID = Locked<String?>(nil)

    init(name: String) { self.name = name }

    /// The `call` frames received so far.
    var calls: [JSONObject] { self.received.withLock { $0.filter { $0["call"] != nil } } }
    /// The call ids the gateway cancelled.
    var cancels: [String] { self.received.withLock { $0.compactMap { $0["cancel"]?.stringValue } } }

    /// Connects, registers with `registration` (the CREATE data, JSON text) and serves calls
    /// until the socket closes or the task is cancelled. `registered` gets the CREATE response.
    func serve(
        _ live: some LoopbackClient, registration: String, headers: HTTPFields = [:],
        registered: @escaping @Sendable (Response) -> Void, script: @escaping @Sendable (JSONObject) -> Action
    ) async throws {
        try await live.webSocket("/ws", headers: headers) { socket in
            let outbound = socket.outbound
            self.outbound.withLock { $0 = outbound }
            try await socket.send(#"{"method":"CREATE","namespace":"system/providers","requestid":"register","data":\#(registration)}"#)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                while let text = try await socket.receiveText() {
                    guard case .object(let frame) = try JSONValue(parsing: Array(text.utf8)) else { continue }
                    if frame["call"] == nil && frame["cancel"] == nil {
                        let response = try Response(decoding: frame)
                        if response.requestid == .string("register") {
                            self.registrationID.withLock { $0 = response.data?["id"]?.stringValue }
                            registered(response)
                        }
                        continue
                    }
                    self.received.withLock { $0.append(frame) }
                    guard let callID = frame["call"]?.stringValue else { continue }
                    let action = script(frame)
                    if case .after = action {
                        tasks.addTask { _ = try? await self.perform(action, callID: callID, socket: outbound) }
                    } else if try await self.perform(action, callID: callID, socket: outbound) == false {
                        return
                    }
                }
            }
        }
    }

    /// Does `action`; false when the socket was closed.
    @discardableResult
    private func perform(_ action: Action, callID: String, socket: WebSocketOutboundWriter) async throws -> Bool {
        switch action {
        case .answer(let data):
            try await socket.write(.text(#"{"call":"\#(callID)","status":0,"success":true,"data":\#(data),"dataType":"JSON"}"#))
        case .raw(let text):
            try await socket.write(.text(text.replacingOccurrences(of: "$CALL", with: callID)))
        case .silence:
            break
        case .close:
            try await socket.close(.normalClosure, reason: "provider \(self.name) stops")
            return false
        case .after(let delay, let action):
            try await Task.sleep(for: delay)
            return try await self.perform(action, callID: callID, socket: socket)
        }
        return true
    }

    /// Sends a frame of the test's own on the provider's socket (a late answer, a DELETE).
    func send(_ text: String) async throws {
        try await self.outbound.withLock { $0 }?.write(.text(text))
    }

    /// Runs a provider for the length of `body`: registered (the registration must succeed)
    /// before `body` starts, its socket closed after.
    static func with(
        _ live: LiveGateway, name: String = "p", registration: String, headers: HTTPFields = [:],
        script: @escaping @Sendable (JSONObject) -> Action, _ body: (ScriptedProvider) async throws -> Void
    ) async throws {
        let provider = ScriptedProvider(name: name)
        let (responses, continuation) = AsyncStream<Response>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                try await provider.serve(live, registration: registration, headers: headers, registered: { continuation.yield($0) }, script: script)
            }
            var iterator = responses.makeAsyncIterator()
            let response = await iterator.next()
            guard let response, response.success else {
                group.cancelAll()
                throw RegistrationFailed(response: response)
            }
            try await body(provider)
            await provider.cut()
            try await group.waitForAll()
        }
    }

    struct RegistrationFailed: Error { let response: Response? }

    /// Closes the provider's socket from outside (the provider's process dies).
    func cut() async {
        try? await self.outbound.withLock { $0 }?.close(.normalClosure, reason: "cut")
    }
}
