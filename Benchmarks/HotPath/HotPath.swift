import Benchmark
import FlowCore
import FlowProtocol
import Foundation
import Logging
import Prometheus

/// The hot path's pieces, each measured alone: time and allocations per call.
///
/// With FLOWGATE_BENCH_SMOKE set (CI), each runs a few iterations only: it checks that they run,
/// not how fast.
let benchmarks: @Sendable () -> Void = {
    let smoke = ProcessInfo.processInfo.environment["FLOWGATE_BENCH_SMOKE"] != nil
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: smoke ? 1 : 100,
        scalingFactor: .kilo,
        maxDuration: smoke ? .milliseconds(200) : .seconds(3),
        maxIterations: smoke ? 3 : 1_000_000
    )

    let openFrame = Array(#"{"method":"OPEN","namespace":"inventory/device","objectid":"bench-1","requestid":17}"#.utf8)
    Benchmark("envelope decode (OPEN frame)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try Envelope.decodeFrame(openFrame))
        }
    }

    let createFrame = Array(#"{"method":"CREATE","namespace":"inventory/device","requestid":"r-1","data":{"name":"core-sw","serial":"SN-0001","site":"HQ","ports":48,"tags":["core","rack-4"]}}"#.utf8)
    Benchmark("envelope decode (CREATE frame with data)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try Envelope.decodeFrame(createFrame))
        }
    }

    let device: JSONValue = [
        "id": "bench-1", "created": "2026-01-01T00:00:00.000Z", "updated": "2026-01-01T00:00:00.000Z", "rev": "abcdefghij",
        "name": "core-sw", "serial": "SN-0001", "site": "HQ", "ports": 48,
    ]
    let valueResponse = Response(success: true, data: device, requestid: .integer(17))
    Benchmark("response encode (object value)") { benchmark in
        for _ in benchmark.scaledIterations {
            var writer = JSONWriter(capacity: 256)
            valueResponse.write(to: &writer)
            blackHole(writer.bytes)
        }
    }

    var storedResponse = Response(success: true, requestid: .integer(17))
    storedResponse.payload = .encoded(device.description)
    Benchmark("response encode (stored JSON text)") { benchmark in
        for _ in benchmark.scaledIterations {
            var writer = JSONWriter(capacity: 256)
            storedResponse.write(to: &writer)
            blackHole(writer.bytes)
        }
    }

    let registry = EndpointRegistry()
    for index in 0..<50 {
        try? registry.register(NoOpEndpoint(namespace: "app\(index % 5)/endpoint-\(index)"))
    }
    try? registry.register(NoOpEndpoint(namespace: "inventory/device"))
    let namespace = Namespace("inventory/device")!
    Benchmark("namespace resolution (51 endpoints)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(registry.endpoint(for: namespace))
        }
    }

    Benchmark("namespace parse and resolve") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Namespace("inventory/device").flatMap { registry.endpoint(for: $0) })
        }
    }

    let dispatcher = Dispatcher(
        registry: registry, authenticator: OpenAccessAuthenticator(), policy: OpenAccessPolicy(), logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
    )
    let request = CallRequest(
        envelope: Envelope(method: .open, namespace: namespace, objectid: "bench-1", requestid: .integer(17)),
        origin: CallOrigin(transport: .websocket)
    )
    Benchmark("dispatch to a no-op endpoint") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(await dispatcher.dispatch(request))
        }
    }

    // The same, recording the SPEC §10 series into a Prometheus registry as the daemon does.
    var factory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
    factory.defaultDurationHistogramBuckets = GatewayMetrics.latencyBuckets
    let measured = Dispatcher(
        registry: registry, authenticator: OpenAccessAuthenticator(), policy: OpenAccessPolicy(),
        metrics: GatewayMetrics(factory: factory), logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
    )
    Benchmark("dispatch to a no-op endpoint, metrics on") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(await measured.dispatch(request))
        }
    }

    let unknown = CallRequest(envelope: Envelope(method: .open, namespace: Namespace("no/such"), objectid: "x"), origin: CallOrigin(transport: .websocket))
    Benchmark("dispatch failure (NO_SUCH_ENDPOINT)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(await dispatcher.dispatch(unknown))
        }
    }
}

/// An endpoint that answers at once with no data: the dispatcher's own cost.
struct NoOpEndpoint: Endpoint {
    let definition: EndpointDefinition

    init(namespace: String) {
        self.definition = EndpointDefinition(namespace: Namespace(namespace)!, title: "No-op", methods: Set(FlowProtocol.Method.allCases))
    }

    func handle(_ call: Call, context: CallContext) async throws -> Reply { Reply() }
}
