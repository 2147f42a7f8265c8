import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// `/metrics` (SPEC §10) after a scripted session on the gateway `flowgate serve` builds, read
/// by Prometheus' own text parser (`prometheus_client.parser`), not by ours.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MetricsTests {
    /// One sample as the parser read it.
    struct Sample: Decodable, Hashable {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    /// Every sample of the exposition, parsed by `prometheus_client` (PyPI).
    static func scrape(_ live: LiveGateway) async throws -> [Sample] {
        let response = try await live.http("/metrics", headers: [:])
        #expect(response.head.status == .ok)
        #expect(response.head.headerFields[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        return try await Self.samples(of: response.bodyText)
    }

    /// The samples of an exposition text, parsed by `prometheus_client` (PyPI).
    static func samples(of text: String) async throws -> [Sample] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-metrics-\(UUID().uuidString).txt")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let python = try #require(ConformanceTests.which("python3"), "python3 is needed")
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            text = open(sys.argv[1]).read()
            print(json.dumps([{"name": s.name, "labels": s.labels, "value": s.value}
                              for family in text_string_to_metric_families(text) for s in family.samples]))
            """
        let (status, output) = try await DaemonProcess.runTool(python, ["-c", script, file.path])
        try #require(status == 0, "prometheus_client could not parse /metrics: \(output)")
        return try JSONDecoder().decode([Sample].self, from: Data(output.utf8))
    }

    /// `flowgate_calls_total` samples that are not zero, as "transport namespace method errorcode" → count.
    static func calls(_ samples: [Sample]) -> [String: Int] {
        var calls: [String: Int] = [:]
        for sample in samples where sample.name == GatewayMetrics.Name.calls && sample.value > 0 {
            let key = ["transport", "namespace", "method", "errorcode"].map { sample.labels[$0] ?? "-" }.joined(separator: " ")
            calls[key] = Int(sample.value)
        }
        return calls
    }

    static func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }

    @Test func aScriptedSessionIsCountedExactlyByTransportNamespaceMethodAndErrorcode() async throws {
        try await LiveGateway.runShipped { live in
            // WebSocket: a success, a missing object, invalid data, a frame that is no JSON.
            try await live.webSocket("/ws") { socket in
                try await socket.send(#"{"method":"CREATE","namespace":"inventory/device","data":{"name":"m1","serial":"SN-m1"},"requestid":"1"}"#)
                #expect(try await socket.receive().success)
                try await socket.send(#"{"method":"OPEN","namespace":"inventory/device","objectid":"nope","requestid":"2"}"#)
                #expect(try await socket.receive().errorcode == .doNotExist)
                try await socket.send(#"{"method":"CREATE","namespace":"inventory/device","data":{"name":7},"requestid":"3"}"#)
                #expect(try await socket.receive().errorcode == .validationFailed)
                try await socket.send("{not json")
                #expect(try await socket.receive().errorcode == .invalidJSON)
            }
            // HTTP: a success, no credential, no such endpoint, a failed login.
            let listed = try await live.http("/api/inventory/inventory/device/")
            #expect(listed.head.status == .ok)
            let anonymous = try await live.http("/api/inventory/inventory/device/", headers: AuthEndToEndTests.anonymous)
            #expect(try anonymous.envelope().errorcode == .unauthenticated)
            let nowhere = try await live.http("/api/nowhere/nowhere/at-all/")
            #expect(try nowhere.envelope().errorcode == .noSuchEndpoint)
            let login = try await live.http(
                "/api/auth/auth/session", method: .post, headers: AuthEndToEndTests.anonymous, body: #"{"username":"admin","password":"wrong-password"}"#
            )
            #expect(try login.envelope().errorcode == .unauthenticated)
            // A provider: its registration and one call to it.
            try await ScriptedProvider.with(live, registration: ProviderTests.registration("demo/jobs")) { _ in .answer(#"{"ok":true}"#) } _: { _ in
                let (answer, _) = try await ProviderTests.call(live, ProviderTests.frame("LIST"))
                #expect(answer.success)
            }

            let samples = try await Self.scrape(live)
            #expect(Self.calls(samples) == [
                "websocket inventory/device CREATE OK": 1,
                "websocket inventory/device OPEN DO_NOT_EXIST": 1,
                "websocket inventory/device CREATE VALIDATION_FAILED": 1,
                "websocket other none INVALID_JSON": 1,
                "http inventory/device LIST OK": 1,
                "http inventory/device LIST UNAUTHENTICATED": 1,
                "http other LIST NO_SUCH_ENDPOINT": 1,
                "http auth/session CREATE UNAUTHENTICATED": 1,
                "websocket system/providers CREATE OK": 1,
                "websocket demo/jobs LIST OK": 1,
            ])
            // Every answer is timed: one histogram count per call, by transport, namespace and method.
            #expect(Self.value(samples, "flowgate_call_duration_seconds_count", ["transport": "websocket", "namespace": "inventory/device", "method": "CREATE"]) == 2)
            #expect(Self.value(samples, "flowgate_call_duration_seconds_bucket", ["transport": "http", "namespace": "inventory/device", "method": "LIST", "le": "+Inf"]) == 2)
            // The smallest bucket resolves a quarter of a millisecond.
            let bounds = samples.filter { $0.name == "flowgate_call_duration_seconds_bucket" }.compactMap { $0.labels["le"].flatMap(Double.init) }
            #expect(bounds.min() == 0.000025)
            #expect(Self.value(samples, GatewayMetrics.Name.failedLogins, ["reason": "credentials"]) == 1)
            #expect(Self.value(samples, GatewayMetrics.Name.failedLogins, ["reason": "rate_limited"]) == 0)
            #expect((Self.value(samples, GatewayMetrics.Name.passwordHashes) ?? 0) >= 2)
            // The CREATE and the login's bookkeeping went through the store's writer.
            #expect((Self.value(samples, GatewayMetrics.Name.storeWriteDuration + "_count") ?? 0) >= 1)
            // Nothing is open any more.
            #expect(Self.value(samples, GatewayMetrics.Name.connections, ["transport": "websocket"]) == 0)
            #expect(Self.value(samples, GatewayMetrics.Name.providers) == 0)
            #expect(Self.value(samples, GatewayMetrics.Name.providerCallsInFlight) == 0)
        }
    }

    @Test func gaugesFollowOpenSocketsWatchesAndEvents() async throws {
        try await LiveGateway.runShipped { live in
            try await live.webSocket("/ws") { socket in
                try await socket.send(#"{"method":"CREATE","namespace":"system/watches","data":{"namespace":"inventory/device"},"requestid":"w"}"#)
                #expect(try await socket.receive().success)
                let during = try await Self.scrape(live)
                #expect(Self.value(during, GatewayMetrics.Name.connections, ["transport": "websocket"]) == 1)
                #expect(Self.value(during, GatewayMetrics.Name.watches) == 1)
                _ = try await live.http(
                    "/api/inventory/inventory/device/", method: .post, headers: [.contentType: "application/json"], body: #"{"name":"g1","serial":"SN-g1"}"#
                )
                let event = try await socket.receiveObject()
                #expect(event["event"] == "created")
                // The counter moves once the write returned, just after the client saw the frame.
                var delivered: Double?
                for _ in 0..<50 where delivered != 1 {
                    delivered = Self.value(try await Self.scrape(live), GatewayMetrics.Name.eventsDelivered)
                    if delivered != 1 { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(delivered == 1)
            }
            let closed = try await Self.scrape(live)
            #expect(Self.value(closed, GatewayMetrics.Name.connections, ["transport": "websocket"]) == 0)
            #expect(Self.value(closed, GatewayMetrics.Name.watches) == 0)
        }
    }

    @Test func aClientCannotGrowTheLabelSet() async throws {
        try await LiveGateway.runShipped { live in
            try await live.webSocket("/ws") { socket in
                for index in 0..<50 {
                    try await socket.send(#"{"method":"LIST","namespace":"made-up/n\#(index)","requestid":"\#(index)"}"#)
                    #expect(try await socket.receive().errorcode == .noSuchEndpoint)
                }
            }
            let samples = try await Self.scrape(live)
            let namespaces = Set(samples.filter { $0.name.hasPrefix("flowgate_call") }.compactMap { $0.labels["namespace"] })
            #expect(namespaces == ["other"])
            #expect(Self.calls(samples) == ["websocket other LIST NO_SUCH_ENDPOINT": 50])
        }
    }

    /// `docker/grafana-dashboard.json` queries only series the daemon exports, and every one of them.
    @Test func theGrafanaDashboardQueriesTheExportedSeries() throws {
        let file = LiveGateway.repository.appendingPathComponent("docker/grafana-dashboard.json")
        let dashboard = try JSONValue(parsing: Array(try Data(contentsOf: file)))
        let expressions = (dashboard["panels"]?.arrayValue ?? []).flatMap { $0["targets"]?.arrayValue ?? [] }.compactMap { $0["expr"]?.stringValue }
        let used = Set(expressions.flatMap { expression in
            expression.matches(of: /flowgate_[a-z_]+/).map { match in
                String(match.output).replacing(/_(bucket|sum|count)$/, with: "")
            }
        })
        let exported: Set<String> = [
            GatewayMetrics.Name.calls, GatewayMetrics.Name.callDuration, GatewayMetrics.Name.connections, GatewayMetrics.Name.watches,
            GatewayMetrics.Name.eventsDelivered, GatewayMetrics.Name.eventsOverflowed, GatewayMetrics.Name.providers,
            GatewayMetrics.Name.providerCallsInFlight, GatewayMetrics.Name.upstreamFailures, GatewayMetrics.Name.failedLogins,
            GatewayMetrics.Name.passwordHashes, GatewayMetrics.Name.storeWriteDuration,
        ]
        #expect(used == exported, "unknown: \(used.subtracting(exported)); not shown: \(exported.subtracting(used))")
    }

    @Test func metricsCanBeTurnedOff() async throws {
        try await LiveGateway.runShipped(configure: { $0.metrics = false }) { live in
            let metrics = try await live.http("/metrics")
            #expect(metrics.head.status == .notFound)
        }
    }
}
