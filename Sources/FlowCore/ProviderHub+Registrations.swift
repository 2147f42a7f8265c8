import Foundation
public import FlowProtocol
import Logging

extension ProviderHub {
    /// Reserves `definition`'s namespace for providers (an `Endpoints/` file with `"kind": "provider"`):
    /// it is known from the start and answers `PROVIDER_UNAVAILABLE` while no provider is connected.
    public func reserve(_ definition: EndpointDefinition, validator: (any DataValidator)?) throws(RegistryError) {
        try self.state.withLock { state throws(RegistryError) in
            try self.registry.register(ProviderEndpoint(definition: definition, validator: validator, hub: self))
            state.served[definition.namespace] = ProviderState.Served(definition: definition, reserved: true)
        }
    }

    /// Registers a provider on `connection` (SPEC §5.4 point 1). The caller's scopes were checked.
    /// Returns the registration as `system/providers` shows it.
    func register(
        _ request: ProviderRegistration, connection: any ConnectionHandle, username: String?, credential: Credential?, node: String? = nil
    ) throws(FlowError) -> JSONValue {
        guard !NamespacePattern.reservedApplications.contains(Substring(request.namespace.firstSegment)) else {
            throw FlowError(.forbidden, "Providers cannot serve the reserved applications auth and system")
        }
        if let schema = request.schema, schema.encoded().count > self.configuration.maxSchemaBytes {
            throw FlowError.validationFailed([DataProblem(path: "/schema", message: "must be at most \(self.configuration.maxSchemaBytes) bytes of JSON")])
        }
        let validator = try request.schema.map { schema throws(FlowError) in try self.compileSchema(schema) }
        let now = ContinuousClock.now
        let id = UUID().uuidString.lowercased()
        let limit = self.configuration.maxRegistrationsPerSocket
        let (summary, resumes, wakeTimers) = try self.state.withLock { state throws(FlowError) in
            guard state.registrations.values.count(where: { $0.connection.id == connection.id }) < limit else {
                throw FlowError(.rateLimited, "This socket holds \(limit) provider registrations, the most allowed; unregister one first")
            }
            try self.attach(request, to: &state, validator: validator)
            let registration = ProviderState.Registration(
                id: id, connection: connection, namespace: request.namespace, concurrency: request.concurrency,
                timeout: request.timeout, username: username, credential: credential, node: node
            )
            state.registrations[id] = registration
            state.served[request.namespace]?.providers.append(id)
            state.served[request.namespace]?.graceUntil = nil
            let resumes = [.providersChanged(request.namespace)] + state.grantWaiters(request.namespace, now: now)
            return (Self.describe(registration, state: state), resumes, state.markTimed())
        }
        if wakeTimers { self.wakeTimers() }
        self.perform(resumes)
        self.logger.info(
            "provider registered",
            metadata: ["flow.namespace": .string(request.namespace.rawValue), "flow.provider": .string(id), "flow.user": .string(username ?? "")]
        )
        return summary
    }

    /// Makes sure `request.namespace` is a provider namespace that this registration fits.
    private func attach(_ request: ProviderRegistration, to state: inout ProviderState, validator: (any DataValidator)?) throws(FlowError) {
        let namespace = request.namespace
        if let served = state.served[namespace] {
            guard let mismatch = request.mismatch(with: served.definition) else { return }
            // In its grace period (no provider) a namespace takes the definition of whoever comes back.
            guard !served.reserved, served.providers.isEmpty else {
                throw FlowError(.conflict, "'\(namespace)' is already provided with another definition: \(mismatch)")
            }
            self.registry.unregister(namespace)
            state.served[namespace] = nil
        }
        guard request.methods?.isEmpty == false else {
            throw FlowError.validationFailed([DataProblem(path: "/methods", message: "is required (no Endpoints/ file reserves this namespace)")])
        }
        let definition = request.definition()
        do {
            try self.registry.register(ProviderEndpoint(definition: definition, validator: validator, hub: self))
        } catch {
            if error == .namespaceTaken(namespace) { throw FlowError(.alreadyExists, "'\(namespace)' is served by an endpoint that is not a provider") }
            throw FlowError.validationFailed([DataProblem(path: "/application", message: error.description)])
        }
        state.served[namespace] = ProviderState.Served(definition: definition, reserved: false)
    }

    /// Unregisters provider `id` (SPEC §5.4 point 1): it takes no new calls at once and leaves
    /// when its calls in flight are answered. Only its own socket may, unless `mayRemoveAny`.
    func unregister(_ id: String, connection: Int?, mayRemoveAny: Bool) throws(FlowError) -> JSONValue {
        let now = ContinuousClock.now
        let (summary, resumes) = try self.state.withLock { state throws(FlowError) in
            guard var registration = state.registrations[id], mayRemoveAny || registration.connection.id == connection else {
                throw FlowError(.doNotExist, "No provider registration has that id")
            }
            registration.draining = true
            state.registrations[id] = registration
            let summary = Self.describe(registration, state: state)
            let resumes = registration.inFlight == 0 ? state.remove(registration: id, now: now) : []
            return (summary, resumes)
        }
        self.perform(resumes)
        self.logger.info("provider unregistered", metadata: ["flow.provider": .string(id)])
        return summary
    }

    /// The socket `connection` closed: every registration it made leaves at once, and their
    /// pending calls answer `PROVIDER_UNAVAILABLE` (or retry elsewhere).
    public func connectionClosed(_ connection: Int) {
        let now = ContinuousClock.now
        let resumes = self.state.withLock { state -> [Resume] in
            guard !state.registrations.isEmpty else { return [] }
            var resumes: [Resume] = []
            for (id, registration) in state.registrations where registration.connection.id == connection {
                resumes += state.remove(registration: id, now: now)
                self.logger.info("provider left: its socket closed", metadata: ["flow.provider": .string(id)])
            }
            return resumes
        }
        self.perform(resumes)
    }

    /// Checks every registration against what its registering credential allows now (after a
    /// change to users, roles or tokens). A revoked credential loses its registrations and its
    /// socket is closed with 4001 (SPEC §5.3); one that no longer has the `provide:` scope for
    /// the namespace loses that registration at once, and its socket is closed with 4003 when it
    /// has no registration left (SPEC §11). Its pending calls answer as when a provider leaves.
    public func recheck(_ currentIdentity: (Credential) -> Identity?) async {
        let now = ContinuousClock.now
        let (closing, resumes) = self.state.withLock { state -> ([Int: (any ConnectionHandle, UInt16)], [Resume]) in
            var closing: [Int: (any ConnectionHandle, UInt16)] = [:]
            var withdrawn: [Int: any ConnectionHandle] = [:]
            var resumes: [Resume] = []
            for (id, registration) in state.registrations {
                guard let credential = registration.credential else { continue }
                guard let identity = currentIdentity(credential) else {
                    closing[registration.connection.id] = (registration.connection, 4001)
                    resumes += state.remove(registration: id, now: now)
                    continue
                }
                if !identity.grants.allowProviding(registration.namespace) {
                    withdrawn[registration.connection.id] = registration.connection
                    resumes += state.remove(registration: id, now: now)
                }
            }
            for (connection, handle) in withdrawn where closing[connection] == nil {
                if !state.registrations.values.contains(where: { $0.connection.id == connection }) { closing[connection] = (handle, 4003) }
            }
            return (closing, resumes)
        }
        self.perform(resumes)
        for (connection, code) in closing.values {
            self.logger.notice(
                code == 4001 ? "closing a provider socket: its credential was revoked" : "closing a provider socket: its provide scope was withdrawn",
                metadata: ["flow.connection": "\(connection.id)"]
            )
            await connection.close(code: code, reason: code == 4001 ? "Credential revoked or expired" : "The provide: scope was withdrawn")
        }
    }

    /// Every registration, as `LIST system/providers` shows it.
    var registrations: [JSONValue] {
        self.state.withLock { state in
            state.registrations.values
                .sorted { ($0.namespace, $0.id) < ($1.namespace, $1.id) }
                .map { Self.describe($0, state: state) }
        }
    }

    /// One registration, or nil.
    func registration(_ id: String) -> JSONValue? {
        self.state.withLock { state in state.registrations[id].map { Self.describe($0, state: state) } }
    }

    static func describe(_ registration: ProviderState.Registration, state: ProviderState) -> JSONValue {
        let definition = state.served[registration.namespace]?.definition
        return [
            "id": .string(registration.id),
            "namespace": .string(registration.namespace.rawValue),
            "application": .string(definition?.application ?? registration.namespace.firstSegment),
            "methods": .array((definition?.methods ?? []).sorted().map { .string($0.rawValue) }),
            "concurrency": .integer(Int64(registration.concurrency)),
            "timeout_ms": .integer(registration.timeout.wholeMilliseconds),
            "inFlight": .integer(Int64(registration.inFlight)),
            "draining": .bool(registration.draining),
            "user": registration.username.map(JSONValue.string) ?? .null,
        ]
    }
}

/// What this node's own providers serve in one namespace, as the cluster offers it to the
/// other nodes (SPEC §12): one registration on each of them stands for all of these.
public struct LocalProvision: Sendable, Equatable {
    public let definition: EndpointDefinition
    /// The sum of the providers' concurrency (at most 10,000, a registration's limit).
    public let concurrency: Int
    /// The longest of the providers' timeouts.
    public let timeout: Duration
}

extension ProviderHub {
    /// Calls `publish` with every event a provider connected to this node publishes (after this
    /// node's watchers have it).
    public func onLocalPublish(_ publish: @escaping @Sendable (LiveEvent) -> Void) {
        self.localPublisher.withLock { $0 = Publisher(publish: { event in publish(event); return true }) }
    }

    /// Calls `changed` whenever a namespace's providers change.
    public func onProvidersChanged(_ changed: @escaping @Sendable () -> Void) {
        self.changeObserver.withLock { $0 = ChangeObserver(changed: changed) }
    }

    /// The namespaces providers connected to this node serve now (not other nodes' links).
    public var localProvisions: [Namespace: LocalProvision] {
        self.state.withLock { state in
            var provisions: [Namespace: LocalProvision] = [:]
            for (namespace, served) in state.served {
                let own = served.providers.compactMap { state.registrations[$0] }.filter { $0.node == nil && !$0.draining }
                guard !own.isEmpty else { continue }
                provisions[namespace] = LocalProvision(
                    definition: served.definition, concurrency: min(own.reduce(0) { $0 + $1.concurrency }, 10_000),
                    timeout: own.map(\.timeout).max() ?? ProviderRegistration.defaultTimeout
                )
            }
            return provisions
        }
    }
}
