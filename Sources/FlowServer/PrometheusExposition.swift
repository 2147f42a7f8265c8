public import FlowCore
import Hummingbird
import NIOCore
public import Prometheus

/// The gateway's metrics in the Prometheus text format at `/metrics` (SPEC §10): a registry of
/// its own (several gateways in one process count apart; nothing is bootstrapped globally), the
/// `GatewayMetrics` the components record into, and the latency buckets that resolve
/// sub-millisecond calls.
public struct PrometheusExposition: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let metrics: GatewayMetrics

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = GatewayMetrics.latencyBuckets
        self.registry = registry
        self.metrics = GatewayMetrics(factory: factory)
    }

    /// The exposition, after the gauges read from state are sampled.
    func render(sampling gateway: (watches: WatchHub, providers: ProviderHub)) -> ByteBuffer {
        self.metrics.sample(
            watches: gateway.watches.count, providers: gateway.providers.registrationCount, providerCalls: gateway.providers.pendingCalls
        )
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16_384)
        self.registry.emit(into: &bytes)
        return ByteBuffer(bytes: bytes)
    }

    /// `GET /metrics`, without a credential (like `/healthz`; the daemon listens on loopback by default).
    func add(to router: Router<GatewayRequestContext>, watches: WatchHub, providers: ProviderHub) {
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: self.render(sampling: (watches, providers)))
            )
        }
    }
}
