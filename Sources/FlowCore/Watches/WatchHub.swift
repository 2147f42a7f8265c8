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
    private let stream: AsyncStream<FeedItem>
    private let input: AsyncStream<FeedItem>.Continuation

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
        let handle: any ConnectionHandle
        let outbox: EventOutbox
        var watches: [String: Watch] = [:]
    }

    private struct State {
        /// The last change fanned out.
        var head: Int64
        var byNamespace: [String: [ObjectIdentifier: Watch]] = [:]
        var connections: [Int: Connection] = [:]
        var nextID: UInt64 = 1
    }

    private let state: Locked<State>

    /// `head` is the log's last position when the hub starts (changes committed later reach
    /// ``publish(_:)``).
    public init(
        log: (any ChangeLog)?, head: Int64, registry: EndpointRegistry, policy: any AuthorizationPolicy, configuration: WatchConfiguration,
        logger: Logger
    ) {
        self.log = log
        self.registry = registry
        self.policy = policy
        self.configuration = configuration
        self.logger = logger
        (self.stream, self.input) = AsyncStream.makeStream(of: FeedItem.self)
        self.state = Locked(State(head: head))
    }

    /// The log's epoch; a hub without a log has positions of its own epoch "0".
    var epoch: String { self.log?.epoch ?? "0" }

    /// Hands a committed change to the fan-out (called in commit order).
    public func publish(_ change: Change) {
        self.input.yield(.change(change))
    }

    /// Hands a provider's event to the fan-out.
    public func publish(_ event: LiveEvent) {
        self.input.yield(.live(event))
    }

    /// An endpoint came (`created`), went (`deleted`) or its providers changed (`updated`).
    /// Never blocks: the registry may call it under a lock.
    public func endpointChanged(_ kind: ChangeKind, _ endpoint: any Endpoint) {
        self.input.yield(.endpoint(kind, endpoint))
    }

    /// The fan-out, until the task is cancelled.
    public func run() async {
        await withTaskCancellationHandler {
            for await item in self.stream { self.fanOut(item) }
        } onCancel: {
            self.input.finish()
        }
    }

    func fanOut(_ item: FeedItem) {
        let namespace: String
        switch item {
        case .change(let change): namespace = change.namespace
        case .live(let event): namespace = event.namespace.rawValue
        case .endpoint: namespace = SystemEndpointsEndpoint.namespace.rawValue
        }
        let watchers = self.state.withLock { state -> [Watch] in
            if case .change(let change) = item { state.head = max(state.head, change.position) }
            guard let watches = state.byNamespace[namespace] else { return [] }
            return Array(watches.values)
        }
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
                handle: connection, outbox: EventOutbox(connection: connection, limit: self.configuration.maxQueuedEvents)
            )
            guard owner.watches.count < self.configuration.maxWatchesPerSocket else {
                throw FlowError(.rateLimited, "A socket may hold at most \(self.configuration.maxWatchesPerSocket) watches: delete one first")
            }
            let id = "w\(state.nextID)"
            state.nextID += 1
            let watch = Watch(
                id: id, hub: self, request: request, definition: definition, identity: identity, credential: credential, outbox: owner.outbox,
                connectionID: connection.id, start: state.head, since: since
            )
            owner.watches[id] = watch
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
