public import CoreMetrics
public import FlowProtocol

/// The series of SPEC §10, made from one swift-metrics factory and recorded where each fact
/// happens: the dispatcher's answer, the connection registry, the provider hub, the watch hub,
/// the auth service, the store.
///
/// Every label set is bounded: a namespace label only names a namespace that was registered when
/// the call ran (at most ``maxNamespaceLabels`` of them; past that, and for calls that named
/// none, it is `other`), an errorcode label a code of the table (or `OK`), a method one of the
/// seven. A client cannot grow the set.
///
/// Each gateway has its own instance (the factory is passed in, not bootstrapped globally), so
/// several gateways in one process count apart. ``disabled`` records nothing.
///
/// ```swift
/// let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry))
/// metrics.call(transport: .http, namespace: "demo/items", method: .open, errorcode: nil, duration: .microseconds(80))
/// ```
public final class GatewayMetrics: Sendable {
    /// Records nothing (the default of every component).
    public static let disabled = GatewayMetrics(factory: NOOPMetricsHandler.instance, enabled: false)

    /// Distinct namespace labels at most; past them a namespace is counted as `other`.
    public static let maxNamespaceLabels = 1_000

    /// The metric names, for the exposition and the documentation.
    public enum Name {
        public static let calls = "flowgate_calls_total"
        public static let callDuration = "flowgate_call_duration_seconds"
        public static let connections = "flowgate_open_connections"
        public static let watches = "flowgate_watches"
        public static let eventsDelivered = "flowgate_events_delivered_total"
        public static let eventsOverflowed = "flowgate_events_overflowed_total"
        public static let providers = "flowgate_providers"
        public static let providerCallsInFlight = "flowgate_provider_calls_in_flight"
        public static let upstreamFailures = "flowgate_upstream_failures_total"
        public static let failedLogins = "flowgate_failed_logins_total"
        public static let passwordHashes = "flowgate_password_hashes_total"
        public static let storeWriteDuration = "flowgate_store_write_duration_seconds"
        public static let storeCommits = "flowgate_store_commits_total"
    }

    /// Histogram buckets that resolve this daemon's sub-millisecond calls, up to the 30 s timeout.
    public static let latencyBuckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        .seconds(30),
    ]

    private struct CallKey: Hashable {
        let transport: Transport
        let namespace: String
        let method: Method?
    }

    private struct CallSeries {
        let latency: Timer
        /// By errorcode (`OK` for success).
        var counters: [String: Counter] = [:]
    }

    private struct CallState {
        var series: [CallKey: CallSeries] = [:]
        var namespaces: Set<String> = []
    }

    private let factory: any MetricsFactory
    /// False for ``disabled``: a call then costs one branch, not a lookup.
    private let enabled: Bool
    private let state = Locked(CallState())
    private let connectionGauges: [Transport: Meter]
    private let watchGauge: Meter
    private let delivered: Counter
    private let overflowed: Counter
    private let providerGauge: Meter
    private let providerCallGauge: Meter
    private let upstreamFailureCounters = Locked([String: Counter]())
    private let failedLoginCounters: (credentials: Counter, limited: Counter)
    private let passwordHashCounter: Counter
    private let storeWrites: Timer
    private let storeCommitCounter: Counter

    public convenience init(factory: any MetricsFactory) {
        self.init(factory: factory, enabled: true)
    }

    private init(factory: any MetricsFactory, enabled: Bool) {
        self.factory = factory
        self.enabled = enabled
        var gauges: [Transport: Meter] = [:]
        for transport in [Transport.websocket, .sse] {
            gauges[transport] = Meter(label: Name.connections, dimensions: [("transport", transport.rawValue)], factory: factory)
        }
        self.connectionGauges = gauges
        self.watchGauge = Meter(label: Name.watches, dimensions: [], factory: factory)
        self.delivered = Counter(label: Name.eventsDelivered, dimensions: [], factory: factory)
        self.overflowed = Counter(label: Name.eventsOverflowed, dimensions: [], factory: factory)
        self.providerGauge = Meter(label: Name.providers, dimensions: [], factory: factory)
        self.providerCallGauge = Meter(label: Name.providerCallsInFlight, dimensions: [], factory: factory)
        self.failedLoginCounters = (
            Counter(label: Name.failedLogins, dimensions: [("reason", "credentials")], factory: factory),
            Counter(label: Name.failedLogins, dimensions: [("reason", "rate_limited")], factory: factory)
        )
        self.passwordHashCounter = Counter(label: Name.passwordHashes, dimensions: [], factory: factory)
        self.storeWrites = Timer(label: Name.storeWriteDuration, dimensions: [], factory: factory)
        self.storeCommitCounter = Counter(label: Name.storeCommits, dimensions: [], factory: factory)
    }

    /// One answered call. `namespace` is the registered namespace that answered it, nil when the
    /// call reached no endpoint; `errorcode` nil for a success.
    public func call(transport: Transport, namespace: Namespace?, method: Method?, errorcode: ErrorCode?, duration: Duration) {
        guard self.enabled else { return }
        // Every ErrorCode is one of the table's (its initialiser is private).
        let code = errorcode?.rawValue ?? "OK"
        let (counter, latency) = self.state.withLock { state -> (Counter, Timer) in
            // Every call but a series' first: one lookup of the series, one of its code.
            let seen = CallKey(transport: transport, namespace: namespace?.rawValue ?? "other", method: method)
            if let series = state.series[seen], let counter = series.counters[code] { return (counter, series.latency) }
            let key = CallKey(transport: transport, namespace: Self.namespaceLabel(namespace, in: &state.namespaces), method: method)
            var series = state.series[key] ?? CallSeries(latency: Timer(label: Name.callDuration, dimensions: self.dimensions(key), factory: self.factory))
            let counter = series.counters[code] ?? Counter(label: Name.calls, dimensions: self.dimensions(key) + [("errorcode", code)], factory: self.factory)
            series.counters[code] = counter
            state.series[key] = series
            return (counter, series.latency)
        }
        counter.increment()
        latency.recordInterval(duration)
    }

    private static func namespaceLabel(_ namespace: Namespace?, in known: inout Set<String>) -> String {
        guard let name = namespace?.rawValue else { return "other" }
        if known.contains(name) { return name }
        guard known.count < maxNamespaceLabels else { return "other" }
        known.insert(name)
        return name
    }

    private func dimensions(_ key: CallKey) -> [(String, String)] {
        [("transport", key.transport.rawValue), ("namespace", key.namespace), ("method", key.method?.rawValue ?? "none")]
    }

    /// A WebSocket or an event stream opened (`true`) or closed.
    public func connection(_ transport: Transport, opened: Bool) {
        guard let gauge = self.connectionGauges[transport] else { return }
        if opened { gauge.increment() } else { gauge.decrement() }
    }

    /// Events written to watchers.
    public func eventsDelivered(_ count: Int) {
        if count > 0 { self.delivered.increment(by: count) }
    }

    /// A watch ended with `overflow` (its subscriber fell behind).
    public func eventOverflow() { self.overflowed.increment() }

    /// Sets the gauges that are read from state when scraped rather than counted: open watches,
    /// provider registrations, calls sent to providers and not yet settled.
    public func sample(watches: Int, providers: Int, providerCalls: Int) {
        self.watchGauge.set(watches)
        self.providerGauge.set(providers)
        self.providerCallGauge.set(providerCalls)
    }

    /// An upstream (SPEC §5.5) could not be reached or answered badly, for the registered `namespace`.
    public func upstreamFailure(_ namespace: Namespace) {
        let counter = self.upstreamFailureCounters.withLock { counters -> Counter in
            let label = counters[namespace.rawValue] != nil || counters.count < Self.maxNamespaceLabels ? namespace.rawValue : "other"
            if let counter = counters[label] { return counter }
            let counter = Counter(label: Name.upstreamFailures, dimensions: [("namespace", label)], factory: self.factory)
            counters[label] = counter
            return counter
        }
        counter.increment()
    }

    /// A login failed: wrong credentials (`limited` false), or refused by the failed-login limit.
    public func failedLogin(limited: Bool) {
        (limited ? self.failedLoginCounters.limited : self.failedLoginCounters.credentials).increment()
    }

    /// A password was hashed or checked (bcrypt ran).
    public func passwordHash() { self.passwordHashCounter.increment() }

    /// A collection write was answered (committed or failed) `duration` after it was asked for.
    public func storeWrite(_ duration: Duration) { self.storeWrites.recordInterval(duration) }

    /// A transaction carrying a group of collection writes committed (or failed): with the
    /// writes' count, how many shared each commit.
    public func storeCommit() { self.storeCommitCounter.increment() }
}

extension Timer {
    /// Records `duration` in nanoseconds.
    func recordInterval(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
