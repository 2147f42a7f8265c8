import DequeModule
import FlowCore
import FlowProtocol
import HTTPTypes
import Hummingbird
import NIOCore

/// Server-Sent Events (SPEC §13.3): a `GET` of a namespace or object path that accepts
/// `text/event-stream` becomes `CREATE system/watches` for it, dispatched like any call; a
/// failure answers as any call does (JSON, mapped status), a success streams the watch's events.
/// `Last-Event-ID` (else `?since=`) resumes, `parameters.filter` filters. The stream counts
/// toward `max_sockets`, and ends with its watch (`ended`, `overflow`), when its credential is
/// revoked, on shutdown, or when the client goes.
struct EventStreamTransport {
    let dispatcher: Dispatcher
    let connections: ConnectionRegistry
    let watches: WatchHub
    static let lastEventID = HTTPField.Name("Last-Event-ID")!

    static func wants(_ request: Request) -> Bool {
        request.method == .get && request.headers[values: .accept].contains { $0.contains("text/event-stream") }
    }

    /// The watch a decoded GET asks for; nil when the GET does not name an endpoint's collection
    /// path (it is then answered as the call it is).
    func watchCall(for call: CallRequest, request: Request) -> CallRequest? {
        guard !call.unresolvedPath, call.envelope.method == .list || call.envelope.method == .open, let namespace = call.envelope.namespace,
            let endpoint = self.dispatcher.registry.endpoint(for: namespace), endpoint.definition.application == call.application
        else { return nil }
        var data: JSONObject = ["namespace": .string(namespace.rawValue)]
        if let objectid = call.envelope.objectid { data["objectid"] = .string(objectid) }
        if let filter = call.envelope.parameters?["filter"] { data["filter"] = filter }
        if let since = request.headers[Self.lastEventID] ?? request.uri.queryParameters["since"].map(String.init) { data["since"] = .string(since) }
        var watch = call
        watch.envelope = Envelope(method: .create, namespace: Namespace("system/watches"), data: .object(data), requestid: call.envelope.requestid)
        watch.application = nil
        return watch
    }

    /// Opens the stream for `call` (from ``watchCall(for:request:)``); `failure` renders an answer
    /// that is not a stream.
    func open(
        _ call: CallRequest, source: CallSource, channel: any Channel, hangUps: HangUpWatch, failure: (DispatchResult) -> Response
    ) async -> Response {
        let pipe = EventPipe()
        guard let id = self.connections.add(.sse, credential: call.origin.credential, { _, _ in pipe.finish() }) else {
            let error = FlowError(.rateLimited, "Too many open sockets and streams: try again later")
            return failure(await self.dispatcher.dispatch(.failure(error, requestid: call.envelope.requestid), from: source) { $0 })
        }
        var source = source
        source.transport = .sse
        source.credential = call.origin.credential
        source.connection = StreamHandle(id: id, pipe: pipe)
        var call = call
        call.origin = source.origin()
        let result = await self.dispatcher.dispatch(.call(call), from: source) { $0 }
        guard result.response.success else {
            self.connections.remove(id)
            return failure(result)
        }
        let start = result.response.data?["position"]?.stringValue ?? ""
        let heartbeat = Task { [interval = self.watches.configuration.heartbeat] in
            while (try? await Task.sleep(for: interval)) != nil { await pipe.send(ByteBuffer(string: ": keep-alive\n\n")) }
        }
        // When the stream ends or its client hangs up, whichever comes first: a client that
        // leaves before the body is written (so the body never runs) must not keep its slot.
        let end: @Sendable () -> Void = { [connections = self.connections, watches = self.watches] in
            heartbeat.cancel()
            pipe.finish()
            connections.remove(id)
            watches.connectionClosed(id)
        }
        let hangUp = hangUps.observe(channel, end)
        let body = ResponseBody { writer in
            defer {
                end()
                hangUps.forget(channel, hangUp)
            }
            // The start position as the stream's last event id: a reconnect before any event resumes from it.
            try await writer.write(ByteBuffer(string: "retry: 2000\nid: \(start)\n\n"))
            while let chunk = await pipe.next() { try await writer.write(chunk) }
            try await writer.finish(nil)
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        // A stream that ends (its watch ended, its credential was revoked) takes its connection along.
        headers[.connection] = "close"
        if let username = result.username { headers[HTTPTransport.flowUser] = username }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// A stream as the watches see it: each event becomes `id:`/`event:`/`data:` lines, and a
/// watch's last word (`ended`, `overflow`) ends the stream after it is written.
struct StreamHandle: ConnectionHandle {
    let id: Int
    let pipe: EventPipe

    func send(_ text: [UInt8]) async {
        await self.pipe.send(ByteBuffer(bytes: text))
    }

    func close(code: UInt16, reason: String) async {
        self.pipe.finish()
    }

    func sendEvent(_ frame: EventFrame) async {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(frame.head.count + frame.tail.count + 64)
        if let position = frame.position { buffer.writeString("id: \(position)\n") }
        buffer.writeString("event: \(frame.kind)\ndata: ")
        buffer.writeBytes(frame.head)
        buffer.writeBytes(frame.tail)
        buffer.writeString("\n\n")
        await self.pipe.send(buffer)
        if frame.kind == "ended" || frame.kind == "overflow" { self.pipe.finish() }
    }
}

/// Hands chunks from the watches to the response body: `send` returns once the body took the
/// chunk, so a stream's outbox fills (and overflows) at its reader's pace, never in memory here.
final class EventPipe: Sendable {
    private struct State {
        var waiting = Deque<(ByteBuffer, CheckedContinuation<Void, Never>)>()
        var receiver: CheckedContinuation<ByteBuffer?, Never>?
        var finished = false
    }

    private let state = Locked(State())

    func send(_ chunk: ByteBuffer) async {
        await withCheckedContinuation { (sender: CheckedContinuation<Void, Never>) in
            let receiver = self.state.withLock { state -> CheckedContinuation<ByteBuffer?, Never>?? in
                if state.finished { return .some(nil) }
                if let receiver = state.receiver {
                    state.receiver = nil
                    return receiver
                }
                state.waiting.append((chunk, sender))
                return nil
            }
            switch receiver {
            case nil: break
            case .some(nil): sender.resume()
            case .some(let receiver?):
                receiver.resume(returning: chunk)
                sender.resume()
            }
        }
    }

    /// The next chunk; nil once finished.
    func next() async -> ByteBuffer? {
        await withCheckedContinuation { (receiver: CheckedContinuation<ByteBuffer?, Never>) in
            let ready = self.state.withLock { state -> (ByteBuffer, CheckedContinuation<Void, Never>)?? in
                if let first = state.waiting.popFirst() { return first }
                if state.finished { return .some(nil) }
                state.receiver = receiver
                return nil
            }
            switch ready {
            case nil: break
            case .some(nil): receiver.resume(returning: nil)
            case .some(let (chunk, sender)?):
                sender.resume()
                receiver.resume(returning: chunk)
            }
        }
    }

    /// Ends the stream: waiting senders go on, the body sees the end.
    func finish() {
        let (senders, receiver) = self.state.withLock { state in
            state.finished = true
            defer {
                state.waiting.removeAll()
                state.receiver = nil
            }
            return (state.waiting.map(\.1), state.receiver)
        }
        for sender in senders { sender.resume() }
        receiver?.resume(returning: nil)
    }
}
