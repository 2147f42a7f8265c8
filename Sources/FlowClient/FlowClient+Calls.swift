public import FlowProtocol
import Logging
import WSCore

extension FlowClient {
    /// Calls an endpoint and returns the gateway's response — failures included, as responses
    /// with `success == false` and their `errorcode`. Many calls may run at once: each carries
    /// its own `requestid`. Waits for a connection if there is none, all within the call timeout.
    ///
    /// Throws ``FlowClientError`` when no response came: timed out, or the connection closed
    /// during the call (which may or may not have run).
    public func call(
        _ method: FlowProtocol.Method, _ namespace: Namespace, objectid: String? = nil, parameters: JSONValue? = nil, data: JSONValue? = nil
    ) async throws -> Response {
        var envelope: JSONObject = ["method": .string(method.rawValue), "namespace": .string(namespace.rawValue)]
        if let objectid { envelope["objectid"] = .string(objectid) }
        if let parameters { envelope["parameters"] = parameters }
        if let data { envelope["data"] = data }
        let deadline = ContinuousClock.now + self.configuration.callTimeout
        return try await withThrowingTaskGroup(of: Response?.self) { group in
            group.addTask { [envelope] in try await self.exchange(envelope) }
            group.addTask {
                try await Task.sleep(until: deadline)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let response = first else { throw FlowClientError.timedOut }
            return response
        }
    }

    /// Sends `envelope` with a fresh `requestid` and waits for its response.
    private func exchange(_ envelope: JSONObject) async throws -> Response {
        let outbound = try await self.connection()
        let requestid = "fc-\(self.state.withLock { $0.newID() })"
        var envelope = envelope
        envelope["requestid"] = .string(requestid)
        var writer = JSONWriter()
        writer.write(.object(envelope))
        self.state.withLock { $0.pending[requestid] = Pending() }
        return try await withTaskCancellationHandler {
            do {
                try await outbound.write(.text(String(decoding: writer.bytes, as: UTF8.self)))
            } catch {
                self.settle(requestid, .failure(FlowClientError.connectionLost))
            }
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Response, any Error>) in
                let early = self.state.withLock { state -> Result<Response, any Error>? in
                    guard let pending = state.pending[requestid] else { return .failure(FlowClientError.connectionLost) }
                    if let result = pending.result {
                        state.pending[requestid] = nil
                        return result
                    }
                    state.pending[requestid]?.continuation = continuation
                    return nil
                }
                if let early { continuation.resume(with: early) }
            }
        } onCancel: {
            self.settle(requestid, .failure(CancellationError()))
        }
    }

    /// Gives `requestid` its result, once.
    func settle(_ requestid: String, _ result: Result<Response, any Error>) {
        let continuation = self.state.withLock { state -> CheckedContinuation<Response, any Error>? in
            guard let pending = state.pending[requestid], pending.result == nil else { return nil }
            guard let continuation = pending.continuation else {
                state.pending[requestid]?.result = result
                return nil
            }
            state.pending[requestid] = nil
            return continuation
        }
        continuation?.resume(with: result)
    }

    /// One text message from the gateway: a response, a call to serve, or a cancel.
    func receive(_ text: String, outbound: WebSocketOutboundWriter) {
        guard case .object(let frame)? = try? JSONValue(parsing: Array(text.utf8)) else {
            self.logger.warning("ignoring a message that is not a JSON object")
            return
        }
        if let callID = frame["call"]?.stringValue {
            self.startHandler(callID, frame: frame, outbound: outbound)
        } else if let callID = frame["cancel"]?.stringValue {
            self.state.withLock { $0.handlers.removeValue(forKey: callID) }?.cancel()
        } else if let response = try? Response(decoding: frame), case .string(let requestid)? = response.requestid {
            self.settle(requestid, .success(response))
        } else {
            self.logger.warning("ignoring a response this client did not ask for")
        }
    }
}

extension FlowClient {
    /// Publishes a live event of a namespace this client provides (SPEC §13.2): `event` is
    /// `created`, `updated` or `deleted`; the gateway hands it to whoever watches the namespace
    /// now. Best effort, as live events are: false when there is no connection to send it on.
    @discardableResult
    public func publish(_ namespace: Namespace, objectid: String, event: String, data: JSONValue = .null) async -> Bool {
        guard let outbound = self.state.withLock({ $0.outbound }) else { return false }
        var writer = JSONWriter()
        writer.write(["publish": ["namespace": .string(namespace.rawValue), "objectid": .string(objectid), "event": .string(event), "data": data]])
        do {
            try await outbound.write(.text(String(decoding: writer.bytes, as: UTF8.self)))
            return true
        } catch {
            return false
        }
    }
}
