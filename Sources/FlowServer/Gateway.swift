public import FlowCore
import FlowProtocol
import AsyncHTTPClient
import FlowAuth
import FlowSchema
import FlowStore
import Foundation
public import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
public import Logging
import NIOCore
import NIOWebSocket
import OTel
public import ServiceLifecycle
public import Tracing

/// The daemon: registry, dispatcher, and the HTTP + WebSocket server in front of them.
///
/// Run its ``services`` in one `ServiceGroup`, in that order, so that on shutdown the drain
/// runs before the server stops:
///
/// ```swift
/// let gateway = try Gateway(configuration: .init(), authenticator: OpenAccessAuthenticator(), policy: OpenAccessPolicy(), logger: logger)
/// try await ServiceGroup(configuration: .init(services: gateway.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
/// ```
public struct Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let registry: EndpointRegistry
    public let dispatcher: Dispatcher
    /// The providers connected over WebSocket and the calls in flight to them (SPEC §5.4).
    public let providers: ProviderHub
    /// Every watch and the fan-out of committed changes to them (SPEC §13).
    public let watches: WatchHub
    /// The Hummingbird application serving HTTP and WebSocket.
    public let application: Application<RouterResponder<GatewayRequestContext>>
    /// The certificate and key being served, when TLS is on; ``TLSCertificates/reload()`` on SIGHUP.
    public let certificates: TLSCertificates?
    /// `/metrics` and what every component records into (SPEC §10).
    public let exposition: PrometheusExposition
    let connections: ConnectionRegistry
    /// Open TCP connections, HTTP and WebSocket alike (`max_connections`).
    let openConnections = ConnectionCount()
    let logger: Logger
    /// Services that run beside the server (auth housekeeping, the revocation watch).
    let backgroundServices: [any Service]

    /// Builds the gateway; `onServerRunning` receives the bound port once the server listens.
    public init(
        configuration: GatewayConfiguration,
        authenticator: any Authenticator,
        policy: any AuthorizationPolicy,
        registry: EndpointRegistry = EndpointRegistry(),
        readiness: @escaping @Sendable () async -> Bool = { true },
        services: [any Service] = [],
        changeLog: (any ChangeLog)? = nil,
        changeLogHead: Int64 = 0,
        exposition: PrometheusExposition = .init(),
        tracer: (any Tracer)? = nil,
        logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws {
        self.configuration = configuration
        self.exposition = exposition
        // metrics: false records nothing at all, not only serves nothing.
        let metrics = configuration.metrics ? exposition.metrics : .disabled
        self.registry = registry
        self.logger = logger
        try registry.register(SystemEndpointsEndpoint(registry: registry))
        let assertFormats = configuration.assertFormats
        let providers = ProviderHub(
            registry: registry, configuration: configuration.providers,
            compileSchema: { schema throws(FlowError) in try Self.compile(schema, assertFormats: assertFormats) }, logger: logger
        )
        try registry.register(ProvidersEndpoint(hub: providers))
        self.providers = providers
        let dispatcher = Dispatcher(
            registry: registry, authenticator: authenticator, policy: policy,
            configuration: .init(callTimeout: configuration.callTimeout), metrics: metrics, tracer: tracer,
            sampleRatio: configuration.otlpSampleRatio, logger: logger
        )
        let watches = WatchHub(
            log: changeLog, head: changeLogHead, registry: registry, policy: policy, configuration: configuration.watches, metrics: metrics,
            logger: logger
        )
        try registry.register(WatchesEndpoint(hub: watches))
        self.watches = watches
        registry.observe { kind, endpoint in watches.endpointChanged(kind, endpoint) }
        providers.onPublish { event in watches.publish(event) }
        let revocable = authenticator as? any RevocableCredentials
        let connections = ConnectionRegistry(limit: configuration.maxSockets, credentials: revocable, metrics: metrics)
        self.dispatcher = dispatcher
        self.connections = connections
        var background: [any Service] = [ProviderTimers(hub: providers), WatchFanOut(hub: watches)]
        if let changeLog { background.append(ChangeLogHousekeeping(log: changeLog, configuration: configuration.watches, logger: logger)) }
        if let shared = changeLog as? any SharedChangeLog { background.append(ChangeFollower(log: shared, watches: watches)) }
        // The given services first: on shutdown they stop last (the store's pool among them).
        self.backgroundServices = services + background
            + (revocable.map { [RevocationWatch(credentials: $0, connections: connections, providers: providers, watches: watches)] } ?? [])

        let router = Router(context: GatewayRequestContext.self)
        let events = EventStreamTransport(dispatcher: dispatcher, connections: connections, watches: watches)
        router.add(middleware: HTTPTransport(dispatcher: dispatcher, configuration: configuration, events: events))
        router.get("/healthz") { _, _ in Self.json(.ok, #"{"status":"ok"}"#) }
        router.get("/readyz") { _, _ in
            if dispatcher.isDraining { return Self.json(.serviceUnavailable, #"{"ready":false,"reason":"draining"}"#) }
            guard await readiness() else { return Self.json(.serviceUnavailable, #"{"ready":false,"reason":"database"}"#) }
            return Self.json(.ok, #"{"ready":true,"endpoints":\#(registry.count)}"#)
        }
        if configuration.metrics { exposition.add(to: router, watches: watches, providers: providers) }
        if StaticFiles.bundle == nil {
            logger.warning("no resource bundle (flowgate_FlowServer.resources) beside the executable: /client/ and /dashboard/ are not served")
        }
        StaticFiles.load(dashboard: configuration.dashboard).add(to: router)
        let sockets = WebSocketRoutes(
            dispatcher: dispatcher, providers: providers, watches: watches, connections: connections, configuration: configuration, logger: logger
        )
        sockets.add(to: router)

        // permessage-deflate when configured: a compressed message may inflate to the message
        // limit and no more (the assembler then holds the whole message to the same limit).
        let compression: [WebSocketExtensionFactory] =
            configuration.webSocketCompression ? [BoundedDeflate.factory(maxMessageBytes: configuration.maxMessageBytes)] : []
        let webSocket = WebSocketServerConfiguration(
            maxFrameSize: configuration.maxMessageBytes,
            extensions: compression,
            autoPing: .enabled(timePeriod: configuration.pingInterval),
            closeTimeout: .seconds(5),
            validateUTF8: true
        )
        // Heads at most max_head_bytes, connections counted and reaped (SPEC §11).
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ExchangeObserver()],
            idleTimeout: nil,
            // The guard counts the head's bytes exactly; the decoder's limits are only a backstop.
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: 2 * configuration.maxHeadBytes, maxHeaderListSize: 2 * configuration.maxHeadBytes, maxHeaderFieldCount: 1000
            )
        )
        let limits = ConnectionLimits(
            idleTimeout: configuration.idleTimeout, headTimeout: configuration.headTimeout, maxHeadBytes: configuration.maxHeadBytes,
            maxConnections: configuration.maxConnections, open: self.openConnections
        )
        let webSocketResponder = router.buildResponder()
        var server = HTTPServerBuilder { responder in
            GuardedChannel(
                inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder, configuration: .init(http1: http1, ws: webSocket)
                ),
                limits: limits
            )
        }
        if let certificate = configuration.tlsCertificate, let key = configuration.tlsKey {
            let certificates = try TLSCertificates(certificatePath: certificate, keyPath: key)
            // The TLS handler goes first, so the guard and HTTP see (and count) plain bytes.
            server = try .tls(server, tlsConfiguration: certificates.configuration)
            self.certificates = certificates
        } else {
            self.certificates = nil
        }
        self.application = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// The daemon as `flowgate serve` runs it: the declarative endpoints from `endpoints`/`schemas`
    /// (throws ``EndpointCatalog/LoadError`` listing every problem), stored in `data/flowgate.sqlite`,
    /// with users, tokens and roles in the same database and the `auth/*` endpoints (SPEC §9).
    /// On first start it creates the user `admin` (``GatewayConfiguration/adminPassword``, or a
    /// random password it logs once).
    public static func build(
        configuration: GatewayConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws -> Gateway {
        let catalog = try EndpointCatalog.load(
            endpoints: configuration.endpointsDirectory, schemas: configuration.schemasDirectory, assertFormats: configuration.assertFormats
        )
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        // What a previous run left half-sent or half-received.
        try? FileManager.default.removeItem(atPath: GatewayConfiguration.scratchDirectory(dataDirectory: configuration.dataDirectory))
        let exposition = PrometheusExposition()
        let metrics = configuration.metrics ? exposition.metrics : .disabled
        let opened = try await DaemonStore.open(configuration, metrics: metrics, logger: logger)
        do {
            return try await Self.build(configuration: configuration, catalog: catalog, store: opened, exposition: exposition, logger: logger, onServerRunning: onServerRunning)
        } catch {
            await opened.close()
            throw error
        }
    }

    private static func build(
        configuration: GatewayConfiguration, catalog: EndpointCatalog, store opened: DaemonStore, exposition: PrometheusExposition, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void
    ) async throws -> Gateway {
        let metrics = configuration.metrics ? exposition.metrics : .disabled
        let tracing = try configuration.otlpEndpoint.map { try Self.tracingBackend(configuration, endpoint: $0, logger: logger) }
        let store = opened.store
        let auth = AuthService(store: store, configuration: configuration.auth, metrics: metrics, logger: logger)
        let generated: String?
        do {
            generated = try await auth.bootstrap(adminPassword: configuration.adminPassword)
        } catch let error as FlowError where error.code == .validationFailed {
            throw ConfigurationError(key: "admin_password", message: "must be 8 to 1024 characters long")
        }
        if let password = generated {
            logger.notice(
                "first start: the user 'admin' has this random password, shown only now; change it with RUN auth/session current or flowgate user passwd",
                metadata: ["flow.admin.password": .string(password)]
            )
        }
        let registry = EndpointRegistry()
        for endpoint: any Endpoint in [SessionEndpoint(auth: auth), TokensEndpoint(auth: auth), UsersEndpoint(auth: auth), RolesEndpoint(auth: auth)] {
            try registry.register(endpoint)
        }
        var collections: [CollectionSpec] = []
        for collection in catalog.collections {
            let endpoint = CollectionEndpoint(
                definition: collection.definition, searchFields: collection.searchFields, indexes: collection.indexes, store: store,
                validator: collection.validator, limits: configuration.list
            )
            try registry.register(endpoint)
            collections.append(endpoint.spec)
        }
        let indexChanges = try await store.declareIndexes(collections)
        for fields in indexChanges.built { logger.notice("index built", metadata: ["flow.index.fields": "\(fields)"]) }
        for name in indexChanges.dropped { logger.notice("index dropped: no collection declares it", metadata: ["flow.index": "\(name)"]) }
        for upstream in catalog.upstreams {
            guard let target = upstream.upstream else { continue }
            try registry.register(
                UpstreamEndpoint(
                    definition: upstream.definition, validator: upstream.validator, upstream: target,
                    maxAnswerBytes: configuration.maxMessageBytes, client: .upstreams, metrics: metrics
                )
            )
        }
        logger.info(
            "endpoints loaded",
            metadata: [
                "flow.collections": "\(catalog.collections.count)", "flow.provider_namespaces": "\(catalog.providerReservations.count)",
                "flow.upstreams": "\(catalog.upstreams.count)",
                "flow.schemas": "\(catalog.schemaCount)", "flow.data": "\(configuration.dataDirectory)",
            ]
        )
        // Several nodes on one store offer one another their providers (SPEC §12).
        var cluster: Cluster?
        if let secret = configuration.clusterSecret {
            guard let directory = store as? any NodeDirectory else {
                throw ConfigurationError(key: "cluster_secret", message: "needs store: the nodes find one another in the database they share")
            }
            cluster = Cluster(secret: secret, url: configuration.nodeURL, directory: directory, logger: logger)
        }
        let authenticator: any Authenticator = cluster.map { ClusterCredentials(users: auth, cluster: $0) } ?? auth
        let gateway = try Gateway(
            configuration: configuration, authenticator: authenticator, policy: ScopePolicy(), registry: registry,
            readiness: { await store.isHealthy() },
            // The cluster after the store's pool: it stops first, and leaves the directory on its way.
            services: (opened.service.map { [$0] } ?? []) + [AuthHousekeeping(auth: auth)] + (tracing.map { [$0.service] } ?? [])
                + (cluster.map { [$0] } ?? []),
            changeLog: store, changeLogHead: try await store.bounds().head, exposition: exposition, tracer: tracing?.tracer, logger: logger,
            onServerRunning: { [cluster] port in
                cluster?.listening(host: configuration.host, port: port)
                await onServerRunning(port)
            }
        )
        cluster?.attach(gateway.providers)
        if let cluster { logger.info("cluster node", metadata: ["flow.node": .string(cluster.nodeID)]) }
        // Nothing was written since the head was read: the server is not listening yet.
        store.onCommit { [watches = gateway.watches] change in watches.publish(change) }
        // PostgreSQL is backed up with its own tools (pg_dump); system/backup serves the SQLite file.
        if let sqlite = opened.sqlite {
            try registry.register(BackupEndpoint(store: sqlite, auth: auth, watches: gateway.watches, dataDirectory: configuration.dataDirectory))
        }
        for reservation in catalog.providerReservations {
            try gateway.providers.reserve(reservation.definition, validator: reservation.validator)
        }
        return gateway
    }

    /// swift-otel's tracer exporting to `endpoint` over OTLP/HTTP, and the service that batches
    /// and sends the spans (it flushes on shutdown).
    static func tracingBackend(
        _ configuration: GatewayConfiguration, endpoint: String, logger: Logger
    ) throws -> (tracer: any Tracer, service: any Service) {
        var otel = OTel.Configuration.default
        otel.serviceName = configuration.otelServiceName
        otel.diagnosticLogger = .custom(logger)
        otel.diagnosticLogLevel = .warning
        otel.metrics.enabled = false
        otel.logs.enabled = false
        otel.traces.enabled = true
        otel.traces.exporter = .otlp
        otel.traces.otlpExporter.protocol = .httpProtobuf
        otel.traces.otlpExporter.endpoint = endpoint
        otel.traces.batchSpanProcessor.scheduleDelay = configuration.otlpExportInterval
        // The dispatcher samples (CallTracing): whatever reaches the tracer is recorded.
        otel.traces.sampler = .alwaysOn
        let (tracer, service) = try OTel.makeTracingBackend(configuration: otel)
        return (tracer, service)
    }

    /// The database file in `dataDirectory` (the daemon and the `user`/`token` commands share it).
    public static func databasePath(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("flowgate.sqlite")
    }

    /// The services to run, in this order: the server, then the drain that runs first on shutdown.
    public var services: [any Service] {
        self.backgroundServices + [
            self.application,
            DrainService(dispatcher: self.dispatcher, connections: self.connections, timeout: self.configuration.drainTimeout, logger: self.logger),
        ]
    }

    /// Open WebSockets.
    public var openSockets: Int { self.connections.count }

    /// A provider registration's schema, compiled; a schema the validator cannot use is `VALIDATION_FAILED`.
    static func compile(_ schema: JSONValue, assertFormats: Bool) throws(FlowError) -> any DataValidator {
        do {
            return try JSONSchema(schema, assertFormats: assertFormats)
        } catch {
            throw FlowError.validationFailed([DataProblem(path: "/schema" + error.location, message: "\(error.keyword): \(error.message)")])
        }
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Closes with 4001 the sockets whose credential was revoked, after every change (SPEC §5.3).
struct RevocationWatch: Service {
    let credentials: any RevocableCredentials
    let connections: ConnectionRegistry
    let providers: ProviderHub
    let watches: WatchHub

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.credentials.watchRevocations {
                await self.connections.closeRevoked()
                // A provider may have registered with a frame's token rather than the socket's, and
                // may have lost its provide: scope while its credential stays good (SPEC §11).
                await self.providers.recheck(self.credentials.currentIdentity)
                // Watches check access on every event, and end at once when it is gone (SPEC §13.1).
                self.watches.recheck(self.credentials.currentIdentity)
            }
        }
    }
}

/// Tells the watches when other nodes appended to the shared change log (SPEC §12).
struct ChangeFollower: Service {
    let log: any SharedChangeLog
    let watches: WatchHub

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.log.follow { [watches] position in watches.logAdvanced(to: position) } }
    }
}

/// Fans committed changes out to the watches (SPEC §13).
struct WatchFanOut: Service {
    let hub: WatchHub

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.hub.run() }
    }
}

/// Drops what the change log no longer keeps (SPEC §13.1: by count and by age), every
/// `pruneInterval` and once at start.
struct ChangeLogHousekeeping: Service {
    let log: any ChangeLog
    let configuration: WatchConfiguration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let pruned = try await self.log.prune(self.configuration.retention)
                    if pruned > 0 { self.logger.debug("change log pruned", metadata: ["flow.changes": "\(pruned)"]) }
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning("could not prune the change log", metadata: ["flow.error": .string(String(describing: error))])
                }
                do { try await Task.sleep(for: self.configuration.pruneInterval) } catch { return }
            }
        }
    }
}

/// Fires provider call timeouts, slot waits and grace periods (SPEC §5.4). Listed first among
/// the services, so it stops last: calls to providers still time out during the drain.
struct ProviderTimers: Service {
    let hub: ProviderHub

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.hub.runTimers() }
    }
}

/// On shutdown, before the server stops: refuse new calls (`SHUTTING_DOWN`), let the calls in
/// flight finish (up to the drain deadline), then close every WebSocket with 1001.
struct DrainService: Service {
    let dispatcher: Dispatcher
    let connections: ConnectionRegistry
    let timeout: Duration
    let logger: Logger

    func run() async throws {
        do { try await gracefulShutdown() } catch { return }
        self.dispatcher.beginDraining()
        self.logger.info("draining", metadata: ["flow.calls": "\(self.dispatcher.callsInFlight)", "flow.sockets": "\(self.connections.count)"])
        let drained = await self.dispatcher.waitUntilIdle(deadline: .now + self.timeout)
        if !drained {
            self.logger.warning("drain deadline passed with calls in flight", metadata: ["flow.calls": "\(self.dispatcher.callsInFlight)"])
        }
        await self.connections.closeAll(code: .goingAway, reason: "Server shutting down")
    }
}
