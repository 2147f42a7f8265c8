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
    /// This socket, as calls and the provider hub refer to it.
    let handle: SocketHandle
    let configuration: GatewayConfiguration
    /// The namespace of `/ws/<namespace>`, used when a frame names none.
    let defaultNamespace: Namespace?
    /// The credential of the upgrade request; a frame's own `token` wins.
    let socketCredential: Credential?
    let clientAddress: String?
    let logger: Logger

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        var assembler = MessageAssembler(maxMessageBytes: self.configuration.maxMessageBytes)
        var iterator = inbound.makeAsyncIterator()
        let concurrent = ConcurrentCalls(limit: self.configuration.maxInFlightPerSocket)
        defer {
            // The client is gone: calls still running have nobody to answer, and whatever it
            // provided leaves now (its pending calls answer PROVIDER_UNAVAILABLE).
            concurrent.cancelAll()
            self.providers.connectionClosed(self.handle.id)
        }
        while true {
            let frame: WebSocketDataFrame?
            do { frame = try await iterator.next() } catch { return }
            guard let frame else { return }
            switch assembler.append(opcode: .init(frame.opcode), data: frame.data, fin: frame.fin) {
            case .incomplete:
                continue
            case .close(let code, let reason):
                self.logger.debug("closing WebSocket", metadata: ["flow.ws.close": "\(code)", "flow.ws.reason": "\(reason)"])
                try? await outbound.close(code, reason: reason)
                return
            case .message(let kind, let message):
                await self.handle(kind, message, outbound: outbound, concurrent: concurrent)
            }
        }
    }

    /// One whole message. Kept out of `run` so the frame of the read loop, which every idle
    /// socket holds while it waits, stays small.
    @inline(never)
    private func handle(_ kind: MessageAssembler.Kind, _ message: ByteBuffer, outbound: WebSocketOutboundWriter, concurrent: ConcurrentCalls) async {
        guard kind == .text else {
            let error = FlowError(.invalidRequest, "Binary frames are not supported: send each envelope as a JSON text frame")
            return await self.answer(self.dispatcher.failure(error, requestid: nil, origin: self.origin(nil)), outbound: outbound, concurrent: concurrent)
        }
        guard let request = await self.decode(message, outbound: outbound, concurrent: concurrent) else { return }
        // Without a requestid, in order. The call's task is its own: no second task per call
        // inside the dispatcher.
        await concurrent.start(inOrder: request.envelope.requestid == nil) {
            await self.dispatcher.dispatch(request, runsInOwnTask: true) { await self.send($0.response, to: outbound) }
        }
    }

    /// Decodes a text message into a call; answers the failures itself and returns nil for them.
    private func decode(_ message: ByteBuffer, outbound: WebSocketOutboundWriter, concurrent: ConcurrentCalls) async -> CallRequest? {
        let maxDepth = self.configuration.maxJSONDepth
        let decoded = message.withUnsafeReadableBytes { bytes -> Result<InboundFrame, EnvelopeDecodingError> in
            do throws(EnvelopeDecodingError) {
                return .success(try Envelope.decodeFrame(bytes, maxDepth: maxDepth))
            } catch {
                return .failure(error)
            }
        }
        switch decoded {
        case .failure(let failure):
            let response = self.dispatcher.failure(failure.error, requestid: failure.requestid, origin: self.origin(nil))
            await self.answer(response, outbound: outbound, concurrent: concurrent)
            return nil
        case .success(.provider(let frame)):
            // An answer to a call this socket was sent as a provider; needs no token (SPEC §5.4 point 7).
            self.providers.deliver(frame, from: self.handle.id)
            return nil
        case .success(.envelope(var envelope)):
            if envelope.namespace == nil { envelope.namespace = self.defaultNamespace }
            return CallRequest(envelope: envelope, origin: self.origin(envelope.token))
        }
    }

    /// A failure the read loop answers itself: without a `requestid`, in its turn after the
    /// calls before it that have none; with one, at once.
    private func answer(_ response: Response, outbound: WebSocketOutboundWriter, concurrent: ConcurrentCalls) async {
        if response.requestid == nil {
            await concurrent.start(inOrder: true) { await self.send(response, to: outbound) }
        } else {
            await self.send(response, to: outbound)
        }
    }

    private func origin(_ token: String?) -> CallOrigin {
        CallOrigin(
            transport: .websocket, credential: token.map { .token($0) } ?? self.socketCredential, clientAddress: self.clientAddress,
            connection: self.handle
        )
    }

    private func send(_ response: Response, to outbound: WebSocketOutboundWriter) async {
        await self.handle.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: response.encoded())))
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
            self.logger.debug("could not write to the socket: closed")
        }
    }
}

/// The diagnostics echo route: the same frame handling and limits as `/ws`, echoing each
/// message back. Off unless `diagnostics_echo` is set; used for WebSocket conformance tests.
struct EchoConnection {
    let configuration: GatewayConfiguration

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        var assembler = MessageAssembler(maxMessageBytes: self.configuration.maxMessageBytes)
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
