import FlowProtocol

/// A slot on one provider, taken for one call: the call is pending until it is settled.
struct Slot: Sendable {
    let callID: UInt64
    let registration: String
    let connection: any ConnectionHandle
    /// When the call times out (kept across a retry, so a retried call still answers in time).
    let deadline: ContinuousClock.Instant
    let timeout: Duration
    /// The slot is on another node's link (its answer may say that node's provider went away).
    let viaNode: Bool
}

/// How taking a slot ended.
enum SlotOutcome: Sendable {
    case slot(Slot)
    /// No provider serves the namespace (or all that do are leaving).
    case unavailable
    /// Every provider stayed at its concurrency limit for the whole wait (or the wait queue is full).
    case full
    case cancelled
}

/// How a call sent to a provider was settled: exactly one of these, once.
enum CallOutcome: Sendable {
    case answered(JSONObject)
    case timedOut
    case cancelled
    case providerGone
}

/// A continuation to resume once the lock is released.
enum Resume {
    case call(CheckedContinuation<CallOutcome, Never>, CallOutcome)
    case waiter(CheckedContinuation<SlotOutcome, Never>, SlotOutcome)
    /// The namespace's providers changed (`system/endpoints` tells its watchers).
    case providersChanged(Namespace)
}

/// A call waiting for a free slot.
struct Waiter {
    let id: UInt64
    /// When it gives up with `RATE_LIMITED`.
    let until: ContinuousClock.Instant
    /// A retried call's original deadline.
    let callDeadline: ContinuousClock.Instant?
    /// Only this node's own providers may take it (a call another node forwarded here).
    let localOnly: Bool
    /// A retried call: the registration that failed it.
    let avoid: String?
    let continuation: CheckedContinuation<SlotOutcome, Never>
}

/// The provider directory and the calls in flight to providers, changed only under the hub's
/// lock. Every change takes the time and returns the continuations to resume; nothing here
/// sleeps, sends or resumes.
struct ProviderState {
    /// One `CREATE system/providers`.
    struct Registration {
        let id: String
        let connection: any ConnectionHandle
        let namespace: Namespace
        let concurrency: Int
        let timeout: Duration
        /// Who registered, and with what (watched for revocation; never shown).
        let username: String?
        let credential: Credential?
        /// The node whose link registered this (its own providers serve the calls); nil for a
        /// provider connected to this node (SPEC §12).
        let node: String?
        var inFlight = 0
        /// Unregistered with DELETE: takes no new calls, leaves when its calls are done.
        var draining = false
    }

    /// A namespace served by providers.
    struct Served {
        var definition: EndpointDefinition
        /// Registration ids, in the order they registered.
        var providers: [String] = []
        /// Declared by an `Endpoints/` file: stays known with no provider.
        let reserved: Bool
        /// The last provider left: withdrawn at this time unless one comes back or it is reserved.
        var graceUntil: ContinuousClock.Instant?
        var waiters: [Waiter] = []
    }

    struct Pending {
        let registration: String
        let connection: Int
        let namespace: Namespace
        let deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<CallOutcome, Never>?
    }

    var registrations: [String: Registration] = [:]
    var served: [Namespace: Served] = [:]
    var pending: [UInt64: Pending] = [:]
    /// Outcomes that arrived before their caller started waiting.
    var early: [UInt64: CallOutcome] = [:]
    var waiterCount = 0
    /// How long a namespace stays known after its last provider left.
    let gracePeriod: Duration
    /// The timer task is waiting for work (it must be woken when some arrives).
    var timersIdle = true
    private var nextID: UInt64 = 0

    init(gracePeriod: Duration) {
        self.gracePeriod = gracePeriod
    }

    mutating func newID() -> UInt64 {
        self.nextID &+= 1
        return self.nextID
    }

    /// Whether anything is waiting on time: a pending call, a waiter, a grace period.
    var hasTimedWork: Bool {
        !self.pending.isEmpty || self.waiterCount > 0 || self.served.values.contains { $0.graceUntil != nil }
    }

    /// Records that timed work exists; true when the timer task must be woken for it.
    mutating func markTimed() -> Bool {
        defer { self.timersIdle = false }
        return self.timersIdle
    }

    /// Records that the timer task goes to sleep; always true.
    mutating func markIdle() -> Bool {
        self.timersIdle = true
        return true
    }

    // MARK: Slots

    /// A slot on the provider of `namespace` with the fewest calls in flight; nil when all are full.
    /// `localOnly` leaves out the registrations of other nodes' links (a call one of them
    /// forwarded here goes to this node's own providers, never on to a third).
    /// `avoid`: a retried call's first registration (another node's link that answered that its
    /// provider went away is still registered).
    mutating func takeSlot(
        _ namespace: Namespace, now: ContinuousClock.Instant, deadline: ContinuousClock.Instant?, localOnly: Bool, avoid: String? = nil
    ) -> SlotOutcome? {
        guard let served = self.served[namespace] else { return .unavailable }
        var best: Registration?
        var anyOpen = false
        for id in served.providers {
            guard let registration = self.registrations[id], !registration.draining, !localOnly || registration.node == nil, id != avoid else { continue }
            anyOpen = true
            if registration.inFlight < registration.concurrency && registration.inFlight < (best?.inFlight ?? .max) {
                best = registration
            }
        }
        guard anyOpen else { return .unavailable }
        guard let chosen = best else { return nil }
        self.registrations[chosen.id]?.inFlight += 1
        let callID = self.newID()
        let callDeadline = deadline ?? now + chosen.timeout
        self.pending[callID] = Pending(registration: chosen.id, connection: chosen.connection.id, namespace: namespace, deadline: callDeadline)
        return .slot(
            Slot(
                callID: callID, registration: chosen.id, connection: chosen.connection, deadline: callDeadline, timeout: chosen.timeout,
                viaNode: chosen.node != nil
            )
        )
    }

    /// Queues `waiter` for a slot; false when the queue is full (as many waiters as the
    /// namespace's providers have slots).
    mutating func enqueue(_ waiter: Waiter, on namespace: Namespace) -> Bool {
        guard let served = self.served[namespace] else { return false }
        let slots = served.providers.reduce(0) { $0 + (self.registrations[$1]?.concurrency ?? 0) }
        guard served.waiters.count < max(slots, 1) else { return false }
        self.served[namespace]?.waiters.append(waiter)
        self.waiterCount += 1
        return true
    }

    /// Removes a waiter whose caller went away; its continuation, if it was still waiting.
    mutating func cancelWaiter(_ id: UInt64, in namespace: Namespace) -> CheckedContinuation<SlotOutcome, Never>? {
        guard let index = self.served[namespace]?.waiters.firstIndex(where: { $0.id == id }) else { return nil }
        self.waiterCount -= 1
        return self.served[namespace]?.waiters.remove(at: index).continuation
    }

    /// Hands free slots of `namespace` to its waiters, in order.
    mutating func grantWaiters(_ namespace: Namespace, now: ContinuousClock.Instant) -> [Resume] {
        var resumes: [Resume] = []
        while let waiter = self.served[namespace]?.waiters.first {
            guard let outcome = self.takeSlot(namespace, now: now, deadline: waiter.callDeadline, localOnly: waiter.localOnly, avoid: waiter.avoid) else {
                break
            }
            self.served[namespace]?.waiters.removeFirst()
            self.waiterCount -= 1
            resumes.append(.waiter(waiter.continuation, outcome))
        }
        return resumes
    }

    // MARK: Settling calls

    /// Stores the continuation of a caller now waiting for `callID`; the outcome if it came already.
    mutating func await(_ callID: UInt64, _ continuation: CheckedContinuation<CallOutcome, Never>) -> CallOutcome? {
        if let outcome = self.early.removeValue(forKey: callID) { return outcome }
        guard self.pending[callID] != nil else { return .providerGone }
        self.pending[callID]?.continuation = continuation
        return nil
    }

    /// Settles `callID` with `outcome` unless it was settled already; frees its slot.
    mutating func settle(_ callID: UInt64, _ outcome: CallOutcome, now: ContinuousClock.Instant) -> [Resume] {
        guard let call = self.pending.removeValue(forKey: callID) else { return [] }
        var resumes: [Resume] = []
        if let continuation = call.continuation {
            resumes.append(.call(continuation, outcome))
        } else {
            self.early[callID] = outcome
        }
        guard var registration = self.registrations[call.registration] else { return resumes }
        registration.inFlight -= 1
        self.registrations[call.registration] = registration
        if registration.draining && registration.inFlight == 0 {
            resumes += self.remove(registration: registration.id, now: now)
        } else {
            resumes += self.grantWaiters(call.namespace, now: now)
        }
        return resumes
    }

    // MARK: Registrations leaving

    /// Removes a registration: its pending calls settle as `providerGone`; when it was the
    /// namespace's last provider, the grace period starts and the waiters get `unavailable`.
    mutating func remove(registration id: String, now: ContinuousClock.Instant) -> [Resume] {
        guard let registration = self.registrations.removeValue(forKey: id) else { return [] }
        let namespace = registration.namespace
        self.served[namespace]?.providers.removeAll { $0 == id }
        var resumes: [Resume] = [.providersChanged(namespace)]
        for (callID, call) in self.pending where call.registration == id {
            resumes += self.settle(callID, .providerGone, now: now)
        }
        guard let served = self.served[namespace] else { return resumes }
        if served.providers.allSatisfy({ self.registrations[$0]?.draining ?? true }) {
            for waiter in served.waiters { resumes.append(.waiter(waiter.continuation, .unavailable)) }
            self.waiterCount -= served.waiters.count
            self.served[namespace]?.waiters = []
        } else {
            resumes += self.grantWaiters(namespace, now: now)
        }
        if served.providers.isEmpty && !served.reserved {
            self.served[namespace]?.graceUntil = now + self.gracePeriod
        }
        return resumes
    }

    /// Settles what is past its time. Returns the continuations to resume and the namespaces
    /// whose grace period ended (removed here; the caller withdraws them from the registry).
    mutating func expire(now: ContinuousClock.Instant) -> ([Resume], [Namespace]) {
        var resumes: [Resume] = []
        for (callID, call) in self.pending where call.deadline <= now {
            resumes += self.settle(callID, .timedOut, now: now)
        }
        var withdrawn: [Namespace] = []
        for (namespace, served) in self.served {
            if self.waiterCount > 0 {
                let expired = served.waiters.filter { $0.until <= now }
                if !expired.isEmpty {
                    self.served[namespace]?.waiters.removeAll { $0.until <= now }
                    self.waiterCount -= expired.count
                    resumes += expired.map { .waiter($0.continuation, .full) }
                }
            }
            if let until = served.graceUntil, served.providers.isEmpty, until <= now {
                self.served[namespace] = nil
                withdrawn.append(namespace)
            }
        }
        return (resumes, withdrawn)
    }
}
