import DequeModule
public import FlowProtocol
public import Logging

/// Settings of live data (SPEC §13).
public struct WatchConfiguration: Sendable, Equatable {
    /// What the change log keeps (`change_log_max_changes`, `change_log_max_age_ms`).
    public var retention = ChangeRetention()
    /// How often the change log is pruned.
    public var pruneInterval: Duration = .seconds(60)
    /// `max_watches_per_socket`.
    public var maxWatchesPerSocket = 100
    /// `max_queued_events`: events waiting for one socket or stream before its watch overflows.
    public var maxQueuedEvents = 1000
    /// `sse_heartbeat_ms`: the comment line that keeps an idle stream open through proxies.
    public var heartbeat: Duration = .seconds(15)
    /// Items waiting for the fan-out at most. Past it, committed changes are left in the log
    /// (the fan-out reads them back from there), a provider's publish is `RATE_LIMITED`, and
    /// `system/endpoints` watchers get an overflow: memory stays bounded however fast writers go.
    public var maxFanOutBacklog = 10_000

    public init() {}
}

/// Every watch of the gateway (SPEC §13.1) and the one fan-out path they share: each committed
/// change is encoded once and offered to the watches of its namespace, each of which queues it
/// for its own socket (``EventOutbox``). Nothing here waits for a socket: a slow one overflows
/// its own watches and nobody else notices.
///
/// Gapless: a watch is registered at the hub's head `H` under the same lock the fan-out takes to
/// advance it, so every change after `H` reaches it live; the changes up to `H` it asked for
/// (`since`) come from the log, and nothing at or before the last position it delivered is
/// delivered twice.
public final class WatchHub: Sendable {
    let log: (any ChangeLog)?
    let registry: EndpointRegistry
    let policy: any AuthorizationPolicy
    public let configuration: WatchConfiguration
    let logger: Logger
    let metrics: GatewayMetrics

    /// What the fan-out receives, in order.
    enum FeedItem {
        /// A committed collection write.
        case change(Change)
        /// A provider's `publish` (SPEC §13.2): live only.
        case live(LiveEvent)
        /// An endpoint came, went or changed (`system/endpoints` events).
        case endpoint(ChangeKind, any Endpoint)
    }

    struct Connection {
        let outbox: EventOutbox
        var watches: [String: Watch] = [:]
    }

    /// What waits for the fan-out task, bounded by `maxFanOutBacklog`.
    private struct Backlog {
        var items = Deque<FeedItem>()
        /// Changes were left out: the fan-out reads the log after its head first.
        var changesBehind = false
        /// `system/endpoints` events were left out: its watchers overflow.
        var endpointsBehind = false
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private struct State {
        /// The last change fanned out.
        var head: Int64
        var byNamespace: [String: [ObjectIdentifier: Watch]] = [:]
        var connections: [Int: Connection] = [:]
        var nextID: UInt64 = 1
    }

    private let state: Locked<State>
    private let backlog = Locked(Backlog())

    /// `head` is the log's last position when the hub starts (changes committed later reach
    /// ``publish(_:)``).
    public init(
        log: (any ChangeLog)?, head: Int64, registry: EndpointRegistry, policy: any AuthorizationPolicy, configuration: WatchConfiguration,
        metrics: GatewayMetrics = .disabled,
        logger: Logger
    ) {
        self.metrics = metrics
        self.log = log
        self.registry = registry
        self.policy = policy
        self.configuration = configuration
        self.logger = logger
        self.state = Locked(State(head: head))
    }

    /// The log's epoch; a hub without a log has positions of its own epoch "0".
    var epoch: String { self.log?.epoch ?? "0" }

    /// Hands a committed change to the fan-out (called in commit order). A change that does not
    /// fit the backlog stays in the log, where the fan-out reads it back.
    public func publish(_ change: Change) {
        self.enqueue(.change(change)) { $0.changesBehind = true }
    }

    /// The log has changes this process did not publish (another node wrote them, SPEC §12),
    /// up to `position` when known: unless the fan-out is there already, it reads the log after
    /// its head. Never blocks.
    public func logAdvanced(to position: Int64? = nil) {
        if let position, position <= self.state.withLock({ $0.head }) { return }
        let waiter = self.backlog.withLock { backlog -> CheckedContinuation<Void, Never>? in
            guard !backlog.finished else { return nil }
            backlog.changesBehind = true
            defer { backlog.waiter = nil }
            return backlog.waiter
        }
        waiter?.resume()
    }

    /// Hands a provider's event to the fan-out; false when the fan-out is too far behind
    /// (the provider is told `RATE_LIMITED`).
    public func publish(_ event: LiveEvent) -> Bool {
        self.enqueue(.live(event)) { _ in }
    }

    /// An endpoint came (`created`), went (`deleted`) or its providers changed (`updated`).
    /// Never blocks: the registry may call it under a lock.
    public func endpointChanged(_ kind: ChangeKind, _ endpoint: any Endpoint) {
        self.enqueue(.endpoint(kind, endpoint)) { $0.endpointsBehind = true }
    }

    /// Queues `item` unless the backlog is full; `refused` records what a full backlog leaves out.
    @discardableResult
    private func enqueue(_ item: FeedItem, refused: (inout Backlog) -> Void) -> Bool {
        let limit = self.configuration.maxFanOutBacklog
        let (queued, waiter) = self.backlog.withLock { backlog -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !backlog.finished else { return (false, nil) }
            if backlog.items.count < limit {
                backlog.items.append(item)
            } else {
                refused(&backlog)
                if case .live = item { return (false, nil) }
            }
            defer { backlog.waiter = nil }
            return (true, backlog.waiter)
        }
        waiter?.resume()
        return queued
    }

    /// The fan-out, until the task is cancelled.
    public func run() async {
        await withTaskCancellationHandler {
            while let work = await self.nextWork() {
                switch work {
                case .item(let item): self.fanOut(item)
                case .catchUp: await self.catchUp()
                case .endpointsOverflow: self.overflowAll(of: SystemEndpointsEndpoint.namespace.rawValue)
                }
            }
        } onCancel: {
            let waiter = self.backlog.withLock { backlog in
                backlog.finished = true
                defer { backlog.waiter = nil }
                return backlog.waiter
            }
            waiter?.resume()
        }
    }

    private enum Work {
        case item(FeedItem)
        case catchUp
        case endpointsOverflow
    }

    /// What the fan-out does next: what was left out first (it is older than what waits),
    /// then the items in order; nil once cancelled.
    private func nextWork() async -> Work? {
        while true {
            let work = self.backlog.withLock { backlog -> Work?? in
                if backlog.finished { return .some(nil) }
                if backlog.changesBehind {
                    backlog.changesBehind = false
                    return .catchUp
                }
                if backlog.endpointsBehind {
                    backlog.endpointsBehind = false
                    return .endpointsOverflow
                }
                return backlog.items.popFirst().map { .item($0) }
            }
            if let work { return work }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = self.backlog.withLock { backlog -> Bool in
                    if backlog.finished || !backlog.items.isEmpty || backlog.changesBehind || backlog.endpointsBehind { return true }
                    backlog.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    /// Fans out, from the log, the changes after the head that the backlog left out. Those
    /// still queued are at or before the head afterwards and are passed over.
    private func catchUp() async {
        guard let log = self.log else { return }
        while true {
            let head = self.state.withLock { $0.head }
            let batch: [Change]
            do {
                batch = try await log.changes(after: head, limit: 500)
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("the fan-out could not read the change log", metadata: ["flow.error": .string(String(describing: error))])
                return
            }
            for change in batch { self.fanOut(.change(change), fromLog: true) }
            if batch.count < 500 { return }
        }
    }

    /// Ends every watch of `namespace` with an overflow (its events were left out).
    private func overflowAll(of namespace: String) {
        let watchers = self.state.withLock { state in state.byNamespace[namespace].map { Array($0.values) } ?? [] }
        for watch in watchers where watch.overflow() { self.remove(watch) }
    }

    /// Offers `item` to its watchers; `fromLog` when a catch-up read it from the log (whose
    /// positions may skip what was pruned).
    func fanOut(_ item: FeedItem, fromLog: Bool = false) {
        let namespace: String
        switch item {
        case .change(let change): namespace = change.namespace
        case .live(let event): namespace = event.namespace.rawValue
        case .endpoint: namespace = SystemEndpointsEndpoint.namespace.rawValue
        }
        var missing = false
        let watchers = self.state.withLock { state -> [Watch]? in
            if case .change(let change) = item {
                // Already fanned out by a catch-up from the log.
                guard change.position > state.head else { return nil }
                // Published, with positions before it not fanned out yet (another node's writes
                // on a shared log, SPEC §12): they and it are read from the log, in order.
                if !fromLog, change.position > state.head + 1, self.log != nil {
                    missing = true
                    return nil
                }
                state.head = change.position
            }
            return state.byNamespace[namespace].map { Array($0.values) }
        }
        if missing { self.backlog.withLock { $0.changesBehind = true } }
        guard let watchers else { return }
        guard !watchers.isEmpty else { return }
        let encoded: EncodedChange
        switch item {
        case .change(let change):
            encoded = EncodedChange(change, epoch: self.epoch)
        case .live(let event):
            encoded = EncodedChange(live: event)
        case .endpoint(let kind, let endpoint):
            // Described here, off every lock (a provider endpoint asks its hub).
            encoded = EncodedChange(live: LiveEvent(
                namespace: SystemEndpointsEndpoint.namespace, objectid: SystemEndpointsEndpoint.objectID(endpoint.definition.namespace),
                kind: kind, data: SystemEndpointsEndpoint.describe(endpoint)
            ))
        }
        for watch in watchers where watch.offer(encoded) {
            self.remove(watch)
        }
    }

    // MARK: Watches

    /// What a client asks to watch.
    struct Request {
        var namespace: Namespace
        var objectid: String?
        var filter: [String: JSONValue]
        var since: String?
    }

    /// Registers a watch for `connection`; it delivers nothing until ``Watch/start()`` (after
    /// the CREATE answer is written), so that answer comes before its first event.
    func add(
        _ request: Request, definition: EndpointDefinition, identity: Identity, credential: Credential?, connection: any ConnectionHandle
    ) async throws -> Watch {
        var since: Int64?
        if let text = request.since {
            guard let log = self.log else { throw FlowError(.invalidRequest, "'since' needs a change log") }
            since = try await log.resumable(text, retention: self.configuration.retention)
        }
        return try self.state.withLock { state throws(FlowError) -> Watch in
            var owner = state.connections[connection.id] ?? Connection(
                outbox: EventOutbox(connection: connection, limit: self.configuration.maxQueuedEvents, metrics: self.metrics)
            )
            guard owner.watches.count < self.configuration.maxWatchesPerSocket else {
                throw FlowError(.rateLimited, "A socket may hold at most \(self.configuration.maxWatchesPerSocket) watches: delete one first")
            }
            let serial = state.nextID
            state.nextID += 1
            let watch = Watch(
                serial: serial, hub: self, request: request, definition: definition, identity: identity, credential: credential, outbox: owner.outbox,
                connectionID: connection.id, start: state.head, since: since
            )
            owner.watches[watch.id] = watch
            state.connections[connection.id] = owner
            state.byNamespace[request.namespace.rawValue, default: [:]][ObjectIdentifier(watch)] = watch
            return watch
        }
    }

    /// Ends the watch `id` of `connectionID` without a last frame (the client asked); false when it has none such.
    func delete(_ id: String, connectionID: Int) -> Bool {
        guard let watch = self.state.withLock({ $0.connections[connectionID]?.watches[id] }) else { return false }
        watch.end()
        self.remove(watch)
        return true
    }

    /// The connection's watches.
    func watches(of connectionID: Int) -> [Watch] {
        self.state.withLock { state in state.connections[connectionID].map { Array($0.watches.values) } ?? [] }
            .sorted { $0.serial < $1.serial }
    }

    func remove(_ watch: Watch) {
        self.state.withLock { state in
            Self.unindex(watch, &state)
            state.connections[watch.connectionID]?.watches[watch.id] = nil
        }
    }

    /// Takes `watch` out of the fan-out.
    private static func unindex(_ watch: Watch, _ state: inout State) {
        let namespace = watch.namespace.rawValue
        state.byNamespace[namespace]?[ObjectIdentifier(watch)] = nil
        if state.byNamespace[namespace]?.isEmpty == true { state.byNamespace[namespace] = nil }
    }

    /// The socket or stream closed: its watches end, what waited for it is dropped.
    public func connectionClosed(_ connectionID: Int) {
        guard let owner = self.state.withLock({ $0.connections.removeValue(forKey: connectionID) }) else { return }
        for watch in owner.watches.values {
            watch.end()
            self.state.withLock { Self.unindex(watch, &$0) }
        }
        owner.outbox.close()
    }

    /// After a change to users, roles or tokens: each watch takes its subscriber's identity as
    /// it is now; one that may no longer read its namespace ends (`forbidden`), one whose
    /// credential is gone ends (`unauthenticated`) — and its socket or stream, registered with
    /// that credential, is closed by the revocation watch (SPEC §5.3, §13.3).
    public func recheck(_ currentIdentity: (Credential) -> Identity?) {
        let all = self.state.withLock { state in state.connections.values.flatMap { $0.watches.values } }
        for watch in all {
            guard let credential = watch.credential else { continue }
            guard let identity = currentIdentity(credential) else {
                watch.finish(reason: "unauthenticated")
                self.remove(watch)
                continue
            }
            if watch.refresh(identity) { self.remove(watch) }
        }
    }

    /// The database was restored (SPEC §10): the log starts over in a new epoch at `head`, so
    /// every watch ends (`restored`: list again, then watch anew) and the fan-out goes on from there.
    public func restored(head: Int64) {
        let all = self.state.withLock { state in
            state.head = head
            return state.connections.values.flatMap { $0.watches.values }
        }
        for watch in all {
            watch.finish(reason: "restored")
            self.remove(watch)
        }
    }

    /// Open watches.
    public var count: Int {
        self.state.withLock { state in state.connections.values.reduce(0) { $0 + $1.watches.count } }
    }

    // MARK: Reading the log

    func changes(after position: Int64, of watch: Watch, limit: Int) async throws -> [Change] {
        guard let log = self.log else { return [] }
        return try await log.changes(after: position, namespace: watch.namespace.rawValue, objectid: watch.objectid, limit: limit)
    }
}
