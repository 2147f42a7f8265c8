import FlowCore
import FlowProtocol
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// One WebSocket connection on `/ws` (SPEC §5): one task that reads frames, dispatches
/// envelopes and returns when the socket closes.
///
/// Frames without `requestid` are handled one after the other, in the order received. Frames
/// with one run concurrently. Both kinds count against `max_in_flight`; past it the connection
/// stops reading (back-pressure) until one completes. Reading goes on while calls run, so a
/// socket that closes cancels every call it started.
struct WebSocketConnection {
    let dispatcher: Dispatcher
    /// Where provider frames (answers to calls this socket was sent) go.
    let providers: ProviderHub
    /// The watches this socket may hold, which end with it.
    let watches: WatchHub
    /// This socket, as calls and the provider hub refer to it.
    let handle: SocketHandle
    /// The socket as its calls' origin: its credential (a frame's own `token` wins), address, handle.
    let source: CallSource
    /// The three limits the read loop applies (not the whole configuration: every idle socket's
    /// task frame holds a copy of this struct).
    let limits: SocketLimits
    /// The namespace of `/ws/<namespace>`, used when a frame names none.
    let defaultNamespace: Namespace?
    let logger: Logger

    init(
        dispatcher: Dispatcher, providers: ProviderHub, watches: WatchHub, handle: SocketHandle, limits: SocketLimits, defaultNamespace: Namespace?,
        socketCredential: Credential?, clientAddress: String?, logger: Logger
    ) {
        self.dispatcher = dispatcher
        self.providers = providers
        self.watches = watches
        self.handle = handle
        // Each call runs in a task of its own (ConcurrentCalls), cancelled when the socket closes.
        self.source = CallSource(transport: .websocket, clientAddress: clientAddress, connection: handle, credential: socketCredential, tasking: .dedicated)
        self.limits = limits
        self.defaultNamespace = defaultNamespace
        self.logger = logger
    }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        var assembler = MessageAssembler(maxMessageBytes: self.limits.maxMessageBytes)
        var iterator = inbound.makeAsyncIterator()
        let concurrent = ConcurrentCalls(limit: self.limits.maxInFlight)
        defer {
            // The client is gone: calls still running have nobody to answer, and whatever it
            // provided leaves now (its pending calls answer PROVIDER_UNAVAILABLE).
            concurrent.cancelAll()
            self.providers.connectionClosed(self.handle.id)
            self.watches.connectionClosed(self.handle.id)
        }
        while true {
            let frame: WebSocketDataFrame?
            do { frame = try await iterator.next() } catch { return }
            guard let frame else { return }
            switch assembler.append(opcode: .init(frame.opcode), data: frame.data, fin: frame.fin) {
            case .incomplete:
                continue
            case .close(let code, let reason):
                self.logClose(code, reason)
                try? await outbound.close(code, reason: reason)
                return
            case .message(let kind, let message):
                await self.handle(kind, message, concurrent: concurrent)
            }
        }
    }

    /// Out of `run`, whose frame every idle socket holds: the metadata would grow it.
    @inline(never)
    private func logClose(_ code: WebSocketErrorCode, _ reason: String) {
        self.logger.debug("closing WebSocket", metadata: ["flow.ws.close": "\(code)", "flow.ws.reason": "\(reason)", "flow.client": "\(self.source.clientAddress ?? "")"])
    }

    /// One whole message. Kept out of `run` so the frame of the read loop, which every idle
    /// socket holds while it waits, stays small.
    @inline(never)
    private func handle(_ kind: MessageAssembler.Kind, _ message: ByteBuffer, concurrent: ConcurrentCalls) async {
        let decoded: DecodedCall
        if kind == .text {
            guard let call = self.decode(message) else { return }
            decoded = call
        } else {
            decoded = .failure(FlowError(.invalidRequest, "Binary frames are not supported: send each envelope as a JSON text frame"), requestid: nil)
        }
        // Without a requestid, in order (failures too, in their turn); with one, concurrently.
        await concurrent.start(inOrder: decoded.requestid == nil) {
            await self.dispatcher.dispatch(decoded, from: self.source) { await self.handle.send($0.response) }
        }
    }

    /// Decodes a text message; nil for a provider frame, which goes to the provider hub.
    private func decode(_ message: ByteBuffer) -> DecodedCall? {
        let maxDepth = self.limits.maxJSONDepth
        let decoded = message.withUnsafeReadableBytes { bytes -> Result<InboundFrame, EnvelopeDecodingError> in
            do throws(EnvelopeDecodingError) {
                return .success(try Envelope.decodeFrame(bytes, maxDepth: maxDepth))
            } catch {
                return .failure(error)
            }
        }
        switch decoded {
        case .failure(let failure):
            return .failure(failure.error, requestid: failure.requestid)
        case .success(.provider(let frame)):
            // An answer to a call this socket was sent as a provider; needs no token (SPEC §5.4 point 7).
            self.providers.deliver(frame, from: self.handle.id)
            return nil
        case .success(.envelope(var envelope)):
            if envelope.namespace == nil { envelope.namespace = self.defaultNamespace }
            return .call(CallRequest(envelope: envelope, origin: self.source.origin(token: envelope.token)))
        }
    }
}

/// What a socket's read loop needs of the configuration.
struct SocketLimits: Sendable {
    let maxMessageBytes: Int
    let maxInFlight: Int
    let maxJSONDepth: Int

    init(_ configuration: GatewayConfiguration) {
        self.maxMessageBytes = configuration.maxMessageBytes
        self.maxInFlight = configuration.maxInFlightPerSocket
        self.maxJSONDepth = configuration.maxJSONDepth
    }
}

/// A WebSocket as the provider hub sees it: its id in the ``ConnectionRegistry``, and its writer.
struct SocketHandle: ConnectionHandle {
    let id: Int
    let outbound: WebSocketOutboundWriter
    let logger: Logger

    func send(_ text: [UInt8]) async {
        await self.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: text)))
    }

    /// A watch event: its own head and the tail shared with the change's other subscribers,
    /// copied once, into the frame.
    func sendEvent(_ frame: EventFrame) async {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(frame.head.count + frame.tail.count)
        buffer.writeBytes(frame.head)
        buffer.writeBytes(frame.tail)
        await self.write(WebSocketFrame(fin: true, opcode: .text, data: buffer))
    }

    func send(_ response: FlowProtocol.Response) async {
        await self.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: response.encoded())))
    }

    func close(code: UInt16, reason: String) async {
        try? await self.outbound.close(.init(codeNumber: Int(code)), reason: reason)
    }

    /// Writes one frame. A cancelled task's write fails if it has to wait for the socket, and
    /// a timed-out or cancelled call still owes an answer (or a `cancel` frame): it is written
    /// from a fresh task.
    func write(_ frame: WebSocketFrame) async {
        do {
            if Task.isCancelled {
                try await Task { try await self.outbound.write(.custom(frame)) }.value
            } else {
                try await self.outbound.write(.custom(frame))
            }
        } catch {
            self.logger.debug("could not write to the socket: closed", metadata: ["flow.connection": "\(self.id)"])
        }
    }
}

/// The diagnostics echo route: the same frame handling and limits as `/ws`, echoing each
/// message back. Off unless `diagnostics_echo` is set; used for WebSocket conformance tests.
struct EchoConnection {
    let limits: SocketLimits

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        var assembler = MessageAssembler(maxMessageBytes: self.limits.maxMessageBytes)
        do {
            for try await frame in inbound {
                switch assembler.append(opcode: .init(frame.opcode), data: frame.data, fin: frame.fin) {
                case .incomplete: continue
                case .close(let code, let reason):
                    try await outbound.close(code, reason: reason)
                    return
                case .message(let kind, let message):
                    try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: kind == .text ? .text : .binary, data: message)))
                }
            }
        } catch {}
    }
}

extension MessageAssembler.FrameOpcode {
    init(_ opcode: WebSocketDataFrame.Opcode) {
        switch opcode {
        case .text: self = .text
        case .binary: self = .binary
        case .continuation: self = .continuation
        }
    }
}
