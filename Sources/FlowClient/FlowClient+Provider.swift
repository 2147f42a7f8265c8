public import FlowProtocol
import Logging
import WSCore

extension FlowClient {
    /// Serves `endpoint` with `handler` from now on, across reconnects: returns the registration
    /// id once the gateway accepted it. Throws ``FlowError`` when the gateway refuses it
    /// (`FORBIDDEN` without a `provide:` scope, `CONFLICT`, `VALIDATION_FAILED`, …), and
    /// ``FlowClientError/timedOut`` when no connection came within the call timeout.
    public func provide(_ endpoint: ProvidedEndpoint, handler: @escaping Handler) async throws -> String {
        try await self.provide(endpoint, answering: { call in Response(success: true, data: try await handler(call)) })
    }

    /// Serves `endpoint` as ``provide(_:handler:)`` does, with a handler that makes the whole
    /// answer (a LIST's `paging`, a `status`, or a failure without throwing).
    public func provide(_ endpoint: ProvidedEndpoint, answering handler: @escaping Answerer) async throws -> String {
        self.state.withLock { state in
            state.provisions[endpoint.namespace] = Provision(endpoint: endpoint, handler: handler, registering: true)
        }
        do {
            return try await self.register(endpoint.namespace)
        } catch {
            self.state.withLock { _ = $0.provisions.removeValue(forKey: endpoint.namespace) }
            throw error
        }
    }

    /// Stops serving `namespace`: the gateway sends no new calls, and the calls in flight are
    /// still answered by their handlers (SPEC §5.4: in-flight calls finish first).
    public func unprovide(_ namespace: Namespace) async throws {
        let provision = self.state.withLock { $0.provisions.removeValue(forKey: namespace) }
        guard let id = provision?.registrationID, self.isConnected else { return }
        let response = try await self.call(.delete, Self.providers, objectid: id)
        if !response.success && response.errorcode != .doNotExist {
            throw FlowError(response.errorcode ?? .internalError, response.message ?? "unprovide failed")
        }
    }

    /// Registers every provision that is not registered on this connection (after a reconnect).
    func registerAll() async {
        let namespaces = self.state.withLock { state in
            state.provisions.filter { !$0.value.registering && $0.value.registrationID == nil }.keys.map { namespace in
                state.provisions[namespace]?.registering = true
                return namespace
            }
        }
        await withDiscardingTaskGroup { group in
            for namespace in namespaces {
                group.addTask {
                    do {
                        let id = try await self.register(namespace)
                        self.logger.info("registered again", metadata: ["flow.namespace": .string(namespace.rawValue), "flow.provider": .string(id)])
                    } catch {
                        self.logger.error("could not register again", metadata: ["flow.namespace": .string(namespace.rawValue), "flow.error": "\(error)"])
                    }
                }
            }
        }
    }

    /// Registers the provision of `namespace` (marked `registering`), retrying through dropped
    /// connections and transient refusals; stores and returns the id.
    private func register(_ namespace: Namespace) async throws -> String {
        defer { self.state.withLock { $0.provisions[namespace]?.registering = false } }
        var attempt = 0
        while true {
            guard let endpoint = self.state.withLock({ $0.provisions[namespace]?.endpoint }) else { throw CancellationError() }
            let response: Response
            do {
                response = try await self.call(.create, Self.providers, data: endpoint.registration)
            } catch let error as FlowClientError where error == .connectionLost {
                // The old connection may still be winding down: do not spin on it.
                try await Task.sleep(for: self.configuration.backoff(attempt: attempt))
                attempt += 1
                continue
            }
            if response.success, let id = response.data?["id"]?.stringValue {
                let kept = self.state.withLock { state -> Bool in
                    guard state.provisions[namespace] != nil else { return false }
                    state.provisions[namespace]?.registrationID = id
                    return true
                }
                // Unprovided meanwhile: undo.
                if !kept { _ = try? await self.call(.delete, Self.providers, objectid: id) }
                return id
            }
            let code = response.errorcode ?? .internalError
            // A CONFLICT can be the previous connection's registration, not yet gone; the rest are final.
            guard [.conflict, .shuttingDown, .rateLimited, .timeout, .providerUnavailable].contains(code) else {
                throw FlowError(code, response.message ?? "registration refused", data: response.data)
            }
            try await Task.sleep(for: self.configuration.backoff(attempt: attempt))
            attempt += 1
        }
    }

    /// Runs the handler of a `call` frame in a task of its own, cancellable by a `cancel` frame.
    func startHandler(_ callID: String, frame: JSONObject, outbound: WebSocketOutboundWriter) {
        let call = ProviderCall(frame: frame)
        self.state.withLock { state in
            let handler = call.flatMap { state.provisions[$0.namespace]?.handler }
            // Created under the lock, so the task cannot remove its entry before it is added.
            state.handlers[callID] = Task {
                let answer = await self.answer(callID, call: call, handler: handler)
                let current = self.state.withLock { $0.handlers.removeValue(forKey: callID) }
                guard current != nil, let answer else { return }
                try? await outbound.write(.text(String(decoding: answer, as: UTF8.self)))
            }
        }
    }

    /// The answer frame for one call; nil when it was cancelled (the gateway answered already).
    private func answer(_ callID: String, call: ProviderCall?, handler: Answerer?) async -> [UInt8]? {
        var response: Response
        if let call, let handler {
            do {
                response = try await handler(call)
                // The gateway matches the answer by call id, never by a request id.
                response.requestid = nil
            } catch is CancellationError {
                return nil
            } catch let error as FlowError {
                response = Response(success: false, data: error.data, message: error.message, errorcode: error.code)
            } catch {
                self.logger.error("handler failed", metadata: ["flow.call": .string(callID), "flow.error": "\(error)"])
                response = Response(success: false, message: "The provider failed", errorcode: .internalError)
            }
        } else {
            response = Response(success: false, message: "This provider does not serve that call", errorcode: .providerUnavailable)
        }
        if Task.isCancelled { return nil }
        // `{"call":"<id>",` followed by the response's own fields.
        var writer = JSONWriter()
        writer.writeRaw("{\"call\":")
        writer.write(string: callID)
        writer.writeRaw(",")
        return writer.bytes + response.encoded().dropFirst()
    }
}
