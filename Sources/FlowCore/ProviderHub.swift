import Foundation
public import FlowProtocol
public import Logging
import Synchronization

/// Settings of the provider hub (SPEC §5.4).
public struct ProviderConfiguration: Sendable, Equatable {
    /// How long a namespace whose last provider left stays known, answering `PROVIDER_UNAVAILABLE`.
    public var gracePeriod: Duration
    /// How long a call waits for a free slot when every provider is at its `concurrency`
    /// before it answers `RATE_LIMITED`.
    public var slotWait: Duration
    /// How often timeouts, slot waits and grace periods are checked (how late they may fire).
    public var tick: Duration
    /// Registrations one socket may hold at once (more is `RATE_LIMITED`).
    public var maxRegistrationsPerSocket: Int
    /// The largest registered schema, as JSON text (larger is `VALIDATION_FAILED`).
    public var maxSchemaBytes: Int

    public init(
        gracePeriod: Duration = .seconds(30), slotWait: Duration = .seconds(1), tick: Duration = .milliseconds(20),
        maxRegistrationsPerSocket: Int = 64, maxSchemaBytes: Int = 65_536
    ) {
        self.gracePeriod = gracePeriod
        self.slotWait = slotWait
        self.tick = tick
        self.maxRegistrationsPerSocket = maxRegistrationsPerSocket
        self.maxSchemaBytes = maxSchemaBytes
    }
}

/// The providers connected over WebSocket and the calls in flight to them (SPEC §5.4).
///
/// A call to a provider namespace takes a slot on the provider with the fewest calls in flight
/// (waiting up to ``ProviderConfiguration/slotWait`` when all are full), is sent as a `call`
/// frame, and waits for the provider's answer, its timeout, its caller going away, or its
/// provider going away — whichever comes first settles it, exactly once. A provider that leaves
/// settles its calls at once; the idempotent ones are tried once more on another provider.
///
/// All state sits behind one lock; continuations are resumed and frames sent outside it.
public final class ProviderHub: Sendable {
    let registry: EndpointRegistry
    /// Where providers' `publish` frames go (the watches); false when they cannot take more now.
    let publisher = Locked<Publisher?>(nil)

    /// Boxed: a bare closure kept in a `Locked` gains a thunk at every `withLock` (see ``Locked``).
    struct Publisher: Sendable {
        let publish: @Sendable (LiveEvent) -> Bool
    }
    /// Told when a namespace's providers changed (the cluster offers this node's to the others).
    let changeObserver = Locked<ChangeObserver?>(nil)
    /// Given every event a provider connected to this node published (the cluster passes them on).
    let localPublisher = Locked<Publisher?>(nil)

    struct ChangeObserver: Sendable {
        let changed: @Sendable () -> Void
    }
    let configuration: ProviderConfiguration
    let compileSchema: @Sendable (JSONValue) throws(FlowError) -> any DataValidator
    let logger: Logger
    let state: Locked<ProviderState>
    private let retries = Atomic<Int>(0)
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    /// A hub adding its namespaces to `registry`; `compileSchema` turns a registration's schema
    /// into a validator (throws `VALIDATION_FAILED` for a schema it cannot use).
    public init(
        registry: EndpointRegistry,
        configuration: ProviderConfiguration = .init(),
        compileSchema: @escaping @Sendable (JSONValue) throws(FlowError) -> any DataValidator,
        logger: Logger
    ) {
        self.registry = registry
        self.configuration = configuration
        self.compileSchema = compileSchema
        self.logger = logger
        self.state = Locked(ProviderState(gracePeriod: configuration.gracePeriod))
        (self.wakeups, self.wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Provider registrations (one per `CREATE system/providers`) right now.
    public var registrationCount: Int { self.state.withLock { $0.registrations.count } }

    /// Calls sent to providers and not yet answered, timed out or cancelled.
    public var pendingCalls: Int { self.state.withLock { $0.pending.count } }

    /// Idempotent calls sent to a second provider because the first left mid-call, since start.
    public var retriedCalls: Int { self.retries.load(ordering: .relaxed) }

    /// Calls waiting for a free provider slot.
    public var waitingCalls: Int { self.state.withLock { $0.waiterCount } }

    /// How many providers serve `namespace` right now (other nodes' links count one each).
    public func providerCount(_ namespace: Namespace) -> Int {
        self.state.withLock { $0.served[namespace]?.providers.count ?? 0 }
    }

    /// Whether a provider other than `registration` serves `namespace` (only this node's own with `localOnly`).
    func hasOtherProvider(_ namespace: Namespace, than registration: String, localOnly: Bool) -> Bool {
        self.state.withLock { state in
            state.served[namespace]?.providers.contains { id in
                id != registration && (!localOnly || state.registrations[id]?.node == nil)
            } ?? false
        }
    }

    // MARK: Forwarding a call

    /// Forwards `call` to a provider of its namespace and relays the answer (SPEC §5.4 points 2–5).
    /// `localOnly`: only providers connected to this node, not other nodes' links (see
    /// ``forwardHere(_:context:)``).
    func forward(_ call: Call, context: CallContext, localOnly: Bool = false) async throws -> Reply {
        var deadline: ContinuousClock.Instant?
        var retried = false
        var avoid: String?
        while true {
            let slot = try await self.acquireSlot(call.namespace, deadline: deadline, localOnly: localOnly, avoid: avoid)
            deadline = slot.deadline
            await slot.connection.send(Self.callFrame(slot.callID, call, identity: context.identity, traceparent: context.traceparent))
            var outcome = await self.outcome(of: slot.callID)
            // Another node answering PROVIDER_UNAVAILABLE: its provider went away mid-call, as a
            // provider of this node can; an idempotent call is tried once more elsewhere.
            if slot.viaNode, case .answered(let answer) = outcome, answer["errorcode"] == .string(ErrorCode.providerUnavailable.rawValue) {
                outcome = .providerGone
            }
            switch outcome {
            case .answered(let answer):
                return try Reply(relaying: answer, sender: "The provider", source: ["flow.provider": .string(slot.registration)], logger: context.logger)
            case .timedOut:
                await slot.connection.send(Self.cancelFrame(slot.callID))
                throw FlowError(.timeout, "The provider did not answer within \(slot.timeout.readable)")
            case .cancelled:
                await slot.connection.send(Self.cancelFrame(slot.callID))
                throw CancellationError()
            case .providerGone:
                if call.method.isIdempotent && !retried && self.hasOtherProvider(call.namespace, than: slot.registration, localOnly: localOnly) {
                    retried = true
                    avoid = slot.registration
                    self.retries.add(1, ordering: .relaxed)
                    context.logger.info("provider left during the call; retrying on another", metadata: ["flow.provider": .string(slot.registration)])
                    continue
                }
                throw FlowError(.providerUnavailable, "The provider of '\(call.namespace)' went away")
            }
        }
    }

    /// A call another node forwarded here (SPEC §12): served by a provider connected to this
    /// node, with the provider's timeout, cancel and retry, exactly as a call made here.
    public func forwardHere(_ call: Call, context: CallContext) async throws -> Reply {
        try await self.forward(call, context: context, localOnly: true)
    }

    /// Takes a slot on the least busy provider of `namespace`, waiting briefly when all are full.
    private func acquireSlot(_ namespace: Namespace, deadline: ContinuousClock.Instant?, localOnly: Bool, avoid: String?) async throws -> Slot {
        let waiterID = self.state.withLock { $0.newID() }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<SlotOutcome, Never>) in
                let now = ContinuousClock.now
                let (immediate, wakeTimers) = self.state.withLock { state -> (SlotOutcome?, Bool) in
                    // Checked under the lock: a cancellation after it finds the waiter queued.
                    if Task.isCancelled { return (.cancelled, false) }
                    switch state.takeSlot(namespace, now: now, deadline: deadline, localOnly: localOnly, avoid: avoid) {
                    case .some(let outcome): return (outcome, state.markTimed())
                    case nil:
                        let waiter = Waiter(
                            id: waiterID, until: now + self.configuration.slotWait, callDeadline: deadline, localOnly: localOnly, avoid: avoid,
                            continuation: continuation
                        )
                        guard state.enqueue(waiter, on: namespace) else { return (.full, false) }
                        return (nil, state.markTimed())
                    }
                }
                if wakeTimers { self.wake.yield() }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let continuation = self.state.withLock { $0.cancelWaiter(waiterID, in: namespace) }
            continuation?.resume(returning: .cancelled)
        }
        switch outcome {
        case .slot(let slot): return slot
        case .unavailable: throw FlowError(.providerUnavailable, "No provider serves '\(namespace)' right now")
        case .full: throw FlowError(.rateLimited, "Every provider of '\(namespace)' is at its concurrency limit")
        case .cancelled: throw CancellationError()
        }
    }

    /// Waits until the call is settled; a cancelled caller settles it as cancelled.
    private func outcome(of callID: UInt64) async -> CallOutcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<CallOutcome, Never>) in
                let early = self.state.withLock { $0.await(callID, continuation) }
                if let early { continuation.resume(returning: early) }
            }
        } onCancel: {
            self.perform(self.state.withLock { $0.settle(callID, .cancelled, now: .now) })
        }
    }

    /// A provider frame arrived on `connection`: an answer to one of the calls sent to it.
    /// Answers to calls that were settled already (timed out, cancelled) are dropped.
    /// Sets where providers' events go.
    public func onPublish(_ publisher: @escaping @Sendable (LiveEvent) -> Bool) {
        self.publisher.withLock { $0 = Publisher(publish: publisher) }
    }

    public func deliver(_ frame: JSONObject, from connection: Int) {
        if let publish = frame["publish"] {
            return self.publish(publish, from: connection)
        }
        guard case .string(let text)? = frame["call"], let callID = UInt64(text) else {
            self.logger.debug("dropping a provider frame without a known call id", metadata: ["flow.connection": "\(connection)"])
            return
        }
        let resumes = self.state.withLock { state -> [Resume] in
            guard state.pending[callID]?.connection == connection else { return [] }
            return state.settle(callID, .answered(frame), now: .now)
        }
        if resumes.isEmpty {
            self.logger.debug("dropping a late or unknown answer", metadata: ["flow.call": .string(text)])
        }
        self.perform(resumes)
    }

    /// `{"publish": {"namespace", "objectid", "event", "data"}}` (SPEC §13.2): an event of a
    /// namespace this socket serves, to whoever watches it now. A frame that is not one is
    /// answered with a failure envelope (no requestid) and goes no further.
    private func publish(_ value: JSONValue, from connection: Int) {
        let handle = self.state.withLock { state in state.registrations.values.first { $0.connection.id == connection }?.connection }
        do throws(FlowError) {
            guard case .object(let fields) = value else { throw FlowError(.invalidRequest, "'publish' must be an object {namespace, objectid, event, data}") }
            guard case .string(let text)? = fields["namespace"], let namespace = Namespace(text) else {
                throw FlowError(.invalidRequest, "publish.namespace must be a namespace")
            }
            guard case .string(let objectid)? = fields["objectid"], ObjectID.isValid(objectid) else {
                throw FlowError(.invalidRequest, "publish.objectid must be an object id")
            }
            guard case .string(let name)? = fields["event"], let kind = ChangeKind(rawValue: name) else {
                throw FlowError(.invalidRequest, "publish.event must be created, updated or deleted")
            }
            let serving = self.state.withLock { state in
                state.registrations.values.first { $0.connection.id == connection && $0.namespace == namespace && !$0.draining }
            }
            guard let serving else { throw FlowError(.forbidden, "This socket does not serve '\(namespace)': it cannot publish its events") }
            let event = LiveEvent(namespace: namespace, objectid: objectid, kind: kind, data: fields["data"] ?? .null)
            guard self.publisher.withLock({ $0 })?.publish(event) ?? true else {
                throw FlowError(.rateLimited, "The gateway is behind with events: publish again later")
            }
            // A provider of this node's own: the other nodes' watchers get it too (never passed
            // on again from a node's link, so an event crosses at most one link).
            if serving.node == nil { _ = self.localPublisher.withLock({ $0 })?.publish(event) }
        } catch {
            guard let handle else { return }
            let response = Response.failure(error, errorid: UUID().uuidString.lowercased(), requestid: nil)
            self.logger.info("provider publish refused", metadata: ["flow.errorcode": .string(error.code.rawValue), "flow.connection": "\(connection)"])
            Task { await handle.send(response.encoded()) }
        }
    }

    // MARK: Timers

    /// Settles what ran out of time — calls past their timeout, waits for a slot, grace periods —
    /// until the task is cancelled. Sleeps while nothing is timed.
    public func runTimers() async {
        var wakeups = self.wakeups.makeAsyncIterator()
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (resumes, expired, busy) = self.state.withLock { state in
                let (resumes, expired) = state.expire(now: now)
                // Under the hub's lock, so a provider registering meanwhile finds the registry consistent.
                for namespace in expired { self.registry.unregister(namespace) }
                return (resumes, expired, state.hasTimedWork || !state.markIdle())
            }
            for namespace in expired {
                self.logger.info("provider namespace withdrawn after its grace period", metadata: ["flow.namespace": .string(namespace.rawValue)])
            }
            self.perform(resumes)
            if busy {
                try? await Task.sleep(for: self.configuration.tick)
            } else if await wakeups.next() == nil {
                return
            }
        }
    }

    func wakeTimers() { self.wake.yield() }

    func perform(_ resumes: [Resume]) {
        var changed = false
        for resume in resumes {
            switch resume {
            case .call(let continuation, let outcome): continuation.resume(returning: outcome)
            case .waiter(let continuation, let outcome): continuation.resume(returning: outcome)
            case .providersChanged(let namespace):
                changed = true
                self.registry.changed(namespace)
            }
        }
        // A provider that left may have started a grace period: the timers must see it even
        // when they went idle (without this, a namespace whose last provider left while nothing
        // else was timed stayed in its grace period until something else woke them).
        if changed, self.state.withLock({ $0.hasTimedWork && $0.markTimed() }) { self.wakeTimers() }
        if changed { self.changeObserver.withLock { $0 }?.changed() }
    }

    // MARK: Frames

    /// `{"call", "method", "namespace", "objectid", "parameters", "data", "identity"[, "traceparent"]}`:
    /// never the token.
    static func callFrame(_ callID: UInt64, _ call: Call, identity: Identity, traceparent: String? = nil) -> [UInt8] {
        var writer = JSONWriter(capacity: 256)
        writer.writeRaw("{\"call\":\"")
        writer.write(encoded: String(callID))
        writer.writeRaw("\",")
        call.writeForwarded(identity: identity, to: &writer)
        if let traceparent {
            writer.writeRaw(",\"traceparent\":")
            writer.write(string: traceparent)
        }
        writer.writeRaw("}")
        return writer.bytes
    }

    static func cancelFrame(_ callID: UInt64) -> [UInt8] {
        Array("{\"cancel\":\"\(callID)\"}".utf8)
    }
}
