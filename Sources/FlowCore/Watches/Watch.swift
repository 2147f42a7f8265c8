public import FlowProtocol
import Logging

/// One watch (SPEC §13.1): what it watches, who watches, and how far it got.
///
/// It starts held: changes the fan-out offers are kept until ``start()`` (called once the
/// CREATE answer is written) has replayed the log from `since` up to the hub's head at
/// registration, then released in order and the watch goes live. Every change is checked
/// against the subscriber's access and the filter as it is delivered.
final class Watch: Sendable {
    /// Creation order within the hub, for listing.
    let serial: UInt64
    /// `w<serial>`.
    let id: String
    /// Strong: a replay task may outlive the hub's last other owner; the hub drops its watches when they end.
    let hub: WatchHub
    let namespace: Namespace
    let objectid: String?
    let filter: [String: JSONValue]
    let definition: EndpointDefinition
    let credential: Credential?
    let outbox: EventOutbox
    let connectionID: Int
    /// The hub's head at registration: the log is replayed up to it, later changes come live.
    let replayUntil: Int64

    private struct State {
        var identity: Identity
        /// The last position delivered (or passed over: it did not concern this watch).
        var last: Int64
        /// Held until started and replayed; what arrived meanwhile.
        var holding = true
        var held: [EncodedChange] = []
        var ended = false
    }

    private let state: Locked<State>

    init(
        serial: UInt64, hub: WatchHub, request: WatchHub.Request, definition: EndpointDefinition, identity: Identity, credential: Credential?,
        outbox: EventOutbox, connectionID: Int, start: Int64, since: Int64?
    ) {
        self.serial = serial
        self.id = "w\(serial)"
        self.hub = hub
        self.namespace = request.namespace
        self.objectid = request.objectid
        self.filter = request.filter
        self.definition = definition
        self.credential = credential
        self.outbox = outbox
        self.connectionID = connectionID
        self.replayUntil = start
        self.state = Locked(State(identity: identity, last: since ?? start))
    }

    /// The position the watch starts after, as the CREATE answer reports it.
    var startPosition: Int64 { self.state.withLock { $0.last } }

    /// The watch as `LIST system/watches` and the CREATE answer show it.
    func description(epoch: String) -> JSONValue {
        var object: JSONObject = ["id": .string(self.id), "namespace": .string(self.namespace.rawValue)]
        if let objectid = self.objectid { object["objectid"] = .string(objectid) }
        if !self.filter.isEmpty { object["filter"] = .object(JSONObject(uniqueKeysWithValues: self.filter.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })) }
        object["position"] = .string(FeedPosition(epoch: epoch, sequence: self.startPosition).description)
        return .object(object)
    }

    // MARK: Delivery

    /// Offers a change from the fan-out; true when the watch ended on it (the hub drops it).
    func offer(_ change: EncodedChange) -> Bool {
        self.state.withLock { state in
            guard !state.ended, change.isLive || change.change.position > state.last else { return false }
            if state.holding {
                guard state.held.count < self.outbox.limit else { return self.overflow(&state) }
                state.held.append(change)
                return false
            }
            return self.deliver(change, &state)
        }
    }

    /// Replays the log from the start position up to ``replayUntil`` (waiting for room in the
    /// outbox: a replay goes at the reader's pace), then releases what was held and goes live.
    func start() async {
        var cursor = self.startPosition
        replay: while cursor < self.replayUntil {
            let batch: [Change]
            do {
                batch = try await self.hub.changes(after: cursor, of: self, limit: 256)
            } catch {
                self.hub.logger.warning("a watch could not read the change log", metadata: ["flow.error": .string(String(describing: error))])
                self.finish(reason: "error")
                self.hub.remove(self)
                return
            }
            for change in batch {
                guard change.position <= self.replayUntil else { break replay }
                let step = self.state.withLock { state -> Step? in
                    state.ended ? nil : self.evaluate(EncodedChange(change, epoch: self.hub.epoch), identity: state.identity)
                }
                switch step {
                case nil:
                    return
                case .skip:
                    break
                case .forbidden:
                    self.finish(reason: "forbidden")
                    self.hub.remove(self)
                    return
                case .frame(let frame):
                    guard await self.outbox.enqueue(frame) else { return }
                }
                self.state.withLock { $0.last = max($0.last, change.position) }
            }
            guard let last = batch.last, batch.count == 256 else { break }
            cursor = last.position
        }
        let ended = self.state.withLock { state -> Bool in
            guard !state.ended else { return false }
            state.last = max(state.last, self.replayUntil)
            state.holding = false
            let held = state.held
            state.held = []
            for change in held where change.isLive || change.change.position > state.last {
                if self.deliver(change, &state) { return true }
            }
            return false
        }
        if ended { self.hub.remove(self) }
    }

    private enum Step {
        case skip
        case forbidden
        case frame(EventFrame)
    }

    /// What this watch makes of `change` (SPEC §13.1): nothing when it concerns another object
    /// or neither side of it matches the filter; the change's own event when the object after it
    /// matches; a `deleted` "filtered" event when only the object before it did.
    private func evaluate(_ encoded: EncodedChange, identity: Identity) -> Step {
        let change = encoded.change
        if let objectid = self.objectid, change.objectid != objectid { return .skip }
        guard self.allows(identity) else { return .forbidden }
        guard !self.filter.isEmpty else { return .frame(.change(encoded, watch: self.id)) }
        let (after, before) = encoded.decoded
        if let after, FilterMatch.matches(after, self.filter) {
            return .frame(.change(encoded, watch: self.id))
        }
        if change.kind == .updated, let before, FilterMatch.matches(before, self.filter) {
            return .frame(.change(encoded, watch: self.id, filtered: true))
        }
        return .skip
    }

    private func allows(_ identity: Identity) -> Bool {
        let method: Method = self.objectid == nil ? .list : .open
        if self.definition.isPublic(method) { return true }
        do {
            try self.hub.policy.authorize(identity, method: method, objectid: self.objectid, endpoint: self.definition)
            return true
        } catch {
            return false
        }
    }

    /// Delivers a live change; true when the watch ended on it.
    private func deliver(_ change: EncodedChange, _ state: inout State) -> Bool {
        switch self.evaluate(change, identity: state.identity) {
        case .skip:
            if !change.isLive { state.last = change.change.position }
            return false
        case .forbidden:
            state.ended = true
            self.outbox.force(.ended(watch: self.id, reason: "forbidden"))
            return true
        case .frame(let frame):
            guard self.outbox.offer(frame) else { return self.overflow(&state) }
            if !change.isLive { state.last = change.change.position }
            return false
        }
    }

    /// Ends the watch with an overflow from outside (events it should have had were left out);
    /// true when it was still running.
    func overflow() -> Bool {
        self.state.withLock { state in state.ended ? false : self.overflow(&state) }
    }

    /// The socket fell behind: the watch ends, telling where to resume (SPEC §13.1).
    private func overflow(_ state: inout State) -> Bool {
        state.ended = true
        state.held = []
        self.hub.metrics.eventOverflow()
        self.outbox.force(.overflow(watch: self.id, position: FeedPosition(epoch: self.hub.epoch, sequence: state.last).description))
        return true
    }

    // MARK: Ending

    /// Ends the watch without a word (the client deleted it, or its socket closed).
    func end() {
        self.state.withLock { state in
            state.ended = true
            state.held = []
        }
    }

    /// Ends the watch with `{"event":"ended","reason":…}`, once.
    func finish(reason: String) {
        let first = self.state.withLock { state -> Bool in
            defer { state.ended = true }
            state.held = []
            return !state.ended
        }
        if first { self.outbox.force(.ended(watch: self.id, reason: reason)) }
    }

    /// Takes the subscriber's identity as it is now; true when it may no longer watch (ended).
    func refresh(_ identity: Identity) -> Bool {
        let allowed = self.allows(identity)
        self.state.withLock { $0.identity = identity }
        if !allowed { self.finish(reason: "forbidden") }
        return !allowed
    }
}
