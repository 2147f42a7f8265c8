import FlowAuth
import FlowClient
import FlowCore
import FlowProtocol
import Foundation
import Logging
import ServiceLifecycle

/// Provider routing across the nodes of one store (SPEC §12).
///
/// Every node heartbeats in the node directory (the store's `flowgate_node` table) once a
/// second and reads who else is alive. To every live peer it keeps one WebSocket (a
/// ``FlowClient``, signed in with its node credential), on which it registers, as a provider,
/// each namespace served by providers connected to *it*. The peer's provider hub then treats
/// the link like any provider: a call made there for such a namespace is sent down the link
/// with the caller's identity (never the caller's token), with the usual timeout, cancel and
/// retry-once; this node hands it to one of its own providers (``ProviderHub/forwardHere(_:context:)``,
/// never on to a third node) and sends the answer back.
///
/// A node that dies closes its links (the kernel resets its sockets): the calls pending on them
/// answer `PROVIDER_UNAVAILABLE` at once. One that hangs stops heartbeating: after
/// ``liveWithin`` the others drop it (its link's registrations go, its credential stops
/// working, the socket closes with 4001).
final class Cluster: Service, Sendable {
    /// How often this node heartbeats and looks at the others.
    static let heartbeat: Duration = .seconds(1)
    /// A node whose last heartbeat is older than this is dead to the others.
    static let liveWithin: Duration = .seconds(5)

    let nodeID: String
    let credentials: NodeCredentials
    let directory: any NodeDirectory
    let logger: Logger
    private let state: Locked<State>
    /// Signalled whenever the live nodes change.
    private let liveChanged = ChangeSignal()

    private struct State {
        /// Where the others reach this node; nil until the server listens (port 0).
        var url: String?
        var hub: ProviderHub?
        /// The nodes alive at the last look, this one included.
        var live: Set<String> = []
        var links: [String: Link] = [:]
        /// Whether the last heartbeat failed (logged once per streak).
        var failing = false
        /// This node's providers changed since the last heartbeat: offer them sooner.
        var nudged = false
    }

    /// How often the wait for the next heartbeat looks whether this node's providers changed.
    static let tick: Duration = .milliseconds(100)

    init(secret: String, url: String?, directory: any NodeDirectory, logger: Logger) {
        self.nodeID = UUID().uuidString.lowercased()
        self.credentials = NodeCredentials(secret: secret)
        self.directory = directory
        self.logger = logger
        self.state = Locked(State(url: url))
    }

    /// The hub whose own providers this node offers, and which serves what the others forward.
    func attach(_ hub: ProviderHub) {
        self.state.withLock { $0.hub = hub }
        hub.onProvidersChanged { [weak self] in self?.state.withLock { $0.nudged = true } }
        hub.onLocalPublish { [weak self] event in
            for link in self?.state.withLock({ Array($0.links.values) }) ?? [] { link.publish(event) }
        }
    }

    /// The server listens on `port` (and `host`): the default URL the others reach it at, the
    /// machine's name when `host` is a wildcard address.
    func listening(host: String, port: Int) {
        let name = ["0.0.0.0", "::", "", "*"].contains(host) ? ProcessInfo.processInfo.hostName : host
        self.state.withLock { state in
            if state.url == nil { state.url = "ws://\(name.contains(":") ? "[\(name)]" : name):\(port)" }
        }
    }

    /// Whether `node` was alive at the last look.
    func isLive(_ node: String) -> Bool {
        self.state.withLock { $0.live.contains(node) }
    }

    /// Whether `node` is alive, reading the directory when this node has not seen it yet (a
    /// node that started a moment ago links before the next heartbeat here).
    func isLiveNow(_ node: String) async -> Bool {
        if self.isLive(node) { return true }
        guard let peers = try? await self.directory.liveNodes(within: Self.liveWithin) else { return false }
        self.update(live: peers)
        return self.isLive(node)
    }

    /// Calls `body` after every change of the live nodes, until the task is cancelled.
    func watchChanges(_ body: @Sendable () async -> Void) async {
        await self.liveChanged.watch(body)
    }

    // MARK: Running

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.beat()
                // The next heartbeat, or sooner when this node's providers changed.
                let next = ContinuousClock.now + Self.heartbeat
                while ContinuousClock.now < next, !self.state.withLock({ state in defer { state.nudged = false }; return state.nudged }) {
                    do { try await Task.sleep(for: Self.tick) } catch { return }
                }
            }
        }
        let links = self.state.withLock { state in
            defer { state.links = [:] }
            return Array(state.links.values)
        }
        for link in links { link.stop() }
        try? await self.directory.leave(node: self.nodeID)
    }

    /// One heartbeat: record this node, learn the others, keep one link to each, offer each
    /// this node's providers as they are now.
    private func beat() async {
        guard let url = self.state.withLock({ $0.url }) else { return }
        do {
            let peers = try await self.directory.heartbeat(node: self.nodeID, url: url, liveWithin: Self.liveWithin)
            if self.state.withLock({ state in defer { state.failing = false }; return state.failing }) {
                self.logger.notice("node directory reachable again")
            }
            self.update(live: peers)
        } catch {
            if !self.state.withLock({ state in defer { state.failing = true }; return state.failing }) {
                self.logger.warning("cannot heartbeat in the node directory", metadata: ["flow.error": .string(String(describing: error))])
            }
            return
        }
        let (hub, links) = self.state.withLock { ($0.hub, Array($0.links.values)) }
        guard let hub else { return }
        let provisions = hub.localProvisions
        for link in links { link.offer(provisions) }
    }

    /// Takes the live nodes as `peers` says: links to new ones, drops the links to those gone,
    /// and tells the watchers when anything changed.
    private func update(live peers: [ClusterPeer]) {
        let (started, stopped, changed) = self.state.withLock { state -> ([Link], [Link], Bool) in
            let live = Set(peers.map(\.id))
            let changed = live != state.live
            state.live = live
            var started: [Link] = []
            var stopped: [Link] = []
            for (id, link) in state.links where !live.contains(id) || !peers.contains(ClusterPeer(id: id, url: link.url)) {
                stopped.append(link)
                state.links[id] = nil
            }
            guard let hub = state.hub else { return (started, stopped, changed) }
            for peer in peers where peer.id != self.nodeID && state.links[peer.id] == nil {
                let link = Link(peer: peer, token: self.credentials.token(for: self.nodeID), hub: hub, logger: self.logger)
                state.links[peer.id] = link
                started.append(link)
            }
            return (started, stopped, changed)
        }
        for link in stopped {
            self.logger.notice("node left the cluster", metadata: ["flow.node": .string(link.peer)])
            link.stop()
        }
        for link in started {
            self.logger.info("node joined the cluster", metadata: ["flow.node": .string(link.peer)])
            link.start()
        }
        if changed { self.liveChanged.signal() }
    }
}

/// This node's link to one peer: a provider client of the peer, serving there the namespaces
/// this node's own providers serve.
final class Link: Sendable {
    let peer: String
    let url: String
    private let client: FlowClient
    private let hub: ProviderHub
    private let logger: Logger
    private let state = Locked(State())

    /// Events of this node's providers, sent to the peer in order by one task.
    private let events: AsyncStream<LiveEvent>
    private let eventInput: AsyncStream<LiveEvent>.Continuation
    /// Events queued for the peer at most; past it new ones are dropped (live events are best effort).
    static let maxQueuedEvents = 4096

    private struct State {
        var task: Task<Void, Never>?
        var pump: Task<Void, Never>?
        /// What was offered to the peer (registered, or being registered).
        var offered: [Namespace: LocalProvision] = [:]
        var registering: [Namespace: Task<Void, Never>] = [:]
        /// Namespaces the peer refused at least once (logged once).
        var refused: Set<Namespace> = []
    }

    init(peer: ClusterPeer, token: String, hub: ProviderHub, logger: Logger) {
        self.peer = peer.id
        self.url = peer.url
        (self.events, self.eventInput) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(Self.maxQueuedEvents))
        self.hub = hub
        self.logger = logger
        var clientLogger = logger
        clientLogger[metadataKey: "flow.node"] = .string(peer.id)
        self.client = FlowClient(
            configuration: .init(
                url: peer.url + "/ws", credential: .token(token), callTimeout: .seconds(10), initialBackoff: .milliseconds(100),
                maxBackoff: .seconds(2), maxMessageBytes: 64 << 20, pingInterval: .seconds(2)
            ),
            logger: clientLogger
        )
    }

    func start() {
        let client = self.client
        let events = self.events
        self.state.withLock { state in
            state.task = Task { try? await client.run() }
            state.pump = Task {
                for await event in events {
                    await client.publish(event.namespace, objectid: event.objectid, event: event.kind.rawValue, data: event.data)
                }
            }
        }
    }

    /// Passes a live event of this node's providers on to the peer's watchers.
    func publish(_ event: LiveEvent) {
        self.eventInput.yield(event)
    }

    func stop() {
        let tasks = self.state.withLock { state in
            defer {
                state.task = nil
                state.pump = nil
                state.registering = [:]
            }
            return [state.task, state.pump].compactMap { $0 } + state.registering.values
        }
        for task in tasks { task.cancel() }
        self.eventInput.finish()
    }

    /// Registers on the peer what `provisions` has and was not offered (or changed), and
    /// unregisters what it no longer has.
    func offer(_ provisions: [Namespace: LocalProvision]) {
        let (added, removed) = self.state.withLock { state -> ([(Namespace, LocalProvision)], [Namespace]) in
            guard state.task != nil else { return ([], []) }
            var added: [(Namespace, LocalProvision)] = []
            var removed: [Namespace] = []
            for (namespace, provision) in provisions where state.offered[namespace] != provision {
                if state.offered[namespace] != nil { removed.append(namespace) }
                added.append((namespace, provision))
            }
            for namespace in state.offered.keys where provisions[namespace] == nil { removed.append(namespace) }
            for namespace in removed {
                state.offered[namespace] = nil
                state.registering.removeValue(forKey: namespace)?.cancel()
            }
            for (namespace, provision) in added { state.offered[namespace] = provision }
            return (added, removed)
        }
        guard !added.isEmpty || !removed.isEmpty else { return }
        let client = self.client
        let hub = self.hub
        let logger = self.logger
        let peer = self.peer
        for (namespace, provision) in added {
            let endpoint = ProvidedEndpoint(
                namespace: namespace, application: provision.definition.application, title: provision.definition.title,
                methods: provision.definition.methods, schema: provision.definition.schema, concurrency: provision.concurrency,
                // This node's providers time out first, so the caller hears their TIMEOUT.
                timeout: min(provision.timeout + .seconds(2), .seconds(86_400))
            )
            let task = Task { [weak self] in
                // An earlier registration of the namespace is gone first (a changed definition).
                if removed.contains(namespace) { try? await client.unprovide(namespace) }
                do {
                    _ = try await client.provide(endpoint, answering: { call in await Self.serve(call, hub: hub, logger: logger) })
                } catch is CancellationError {
                } catch {
                    // Offered again at the next heartbeat (the peer may not have seen this node
                    // alive yet, or a provider of its own may hold the namespace with another
                    // definition); said once, not every second.
                    let first = self?.withdraw(namespace, provision) ?? false
                    logger.log(
                        level: first ? .warning : .debug, "another node refused this node's providers",
                        metadata: ["flow.node": .string(peer), "flow.namespace": .string(namespace.rawValue), "flow.error": .string(String(describing: error))]
                    )
                }
            }
            self.state.withLock { $0.registering[namespace] = task }
        }
        for namespace in removed where !added.contains(where: { $0.0 == namespace }) {
            Task { try? await client.unprovide(namespace) }
        }
    }

    /// Forgets that `provision` was offered (its registration failed), so the next heartbeat
    /// offers it again; true the first time `namespace` failed.
    private func withdraw(_ namespace: Namespace, _ provision: LocalProvision) -> Bool {
        self.state.withLock { state in
            if state.offered[namespace] == provision { state.offered[namespace] = nil }
            return state.refused.insert(namespace).inserted
        }
    }

    /// A call the peer forwarded: served by a provider connected here, answered in full.
    static func serve(_ call: ProviderCall, hub: ProviderHub, logger: Logger) async -> Response {
        let forwarded = Call(method: call.method, namespace: call.namespace, objectid: call.objectid, parameters: call.parameters, data: call.data)
        var context = CallContext(
            identity: Identity(username: call.user, roles: call.roles, scopes: call.scopes), transport: .websocket,
            namespace: call.namespace, method: call.method, baseLogger: logger
        )
        context.traceparent = call.traceparent
        do {
            let reply = try await hub.forwardHere(forwarded, context: context)
            var response = Response(status: reply.status, success: true, dataType: reply.dataType, paging: reply.paging)
            response.payload = reply.payload
            return response
        } catch let error as FlowError {
            return Response(success: false, data: error.data, message: error.message, errorcode: error.code)
        } catch {
            // Cancelled: the peer answered its caller already; this answer is dropped.
            return Response(success: false, message: "The call was cancelled", errorcode: .timeout)
        }
    }
}

/// The gateway's authenticator in a cluster: node credentials (``NodeCredentials``) are judged
/// here, good only while their node heartbeats; every other credential goes to the user
/// directory as before.
struct ClusterCredentials: Authenticator, RevocableCredentials {
    let users: any Authenticator & RevocableCredentials
    let cluster: Cluster

    func authenticate(_ credential: Credential?, origin: CallOrigin) async throws(FlowError) -> Identity? {
        guard case .token(let token)? = credential, NodeCredentials.isNodeToken(token) else {
            return try await self.users.authenticate(credential, origin: origin)
        }
        guard let node = self.cluster.credentials.node(token) else {
            throw FlowError(.unauthenticated, "Invalid node credential")
        }
        guard await self.cluster.isLiveNow(node) else {
            throw FlowError(.unauthenticated, "That node is not alive in the node directory")
        }
        return .node(node)
    }

    func isRevoked(_ credential: Credential) -> Bool {
        guard case .token(let token) = credential, NodeCredentials.isNodeToken(token) else { return self.users.isRevoked(credential) }
        return self.liveNode(token) == nil
    }

    func currentIdentity(_ credential: Credential) -> Identity? {
        guard case .token(let token) = credential, NodeCredentials.isNodeToken(token) else { return self.users.currentIdentity(credential) }
        return self.liveNode(token).map(Identity.node)
    }

    /// The node `token` is the credential of, when it is good and the node alive at the last look.
    private func liveNode(_ token: String) -> String? {
        guard let node = self.cluster.credentials.node(token), self.cluster.isLive(node) else { return nil }
        return node
    }

    func watchRevocations(_ body: @Sendable () async -> Void) async {
        // Both watches end with the calling task, before this returns.
        await withoutActuallyEscaping(body) { body in
            await withDiscardingTaskGroup { group in
                group.addTask { await self.users.watchRevocations(body) }
                group.addTask { await self.cluster.watchChanges(body) }
            }
        }
    }
}
