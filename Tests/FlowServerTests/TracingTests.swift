import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// Tracing (SPEC §10) against a real OTLP/HTTP receiver on loopback: a Python server that
/// decodes what the gateway exports with `opentelemetry-proto` (PyPI), the collector's own
/// message definitions.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct TracingTests {
    /// One exported span, as the receiver decoded it.
    struct Span: Decodable {
        let traceId: String
        let spanId: String
        let parentSpanId: String
        let name: String
        let kind: Int
        let attributes: [String: String]
        let status: Int
        let service: String
    }

    /// The receiver: listens on a free loopback port, answers every export, prints each span.
    final class Receiver: Sendable {
        let process: Process
        let port: Int
        private let output: DaemonProcess.LogBuffer

        static let script = """
            import json, sys
            from http.server import BaseHTTPRequestHandler, HTTPServer
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

            def value(v):
                kind = v.WhichOneof("value")
                return str(getattr(v, kind)) if kind else ""

            class Handler(BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    for resource in request.resource_spans:
                        service = next((value(a.value) for a in resource.resource.attributes if a.key == "service.name"), "")
                        for scope in resource.scope_spans:
                            for span in scope.spans:
                                print(json.dumps({
                                    "traceId": span.trace_id.hex(), "spanId": span.span_id.hex(), "parentSpanId": span.parent_span_id.hex(),
                                    "name": span.name, "kind": span.kind, "status": span.status.code, "service": service,
                                    "attributes": {a.key: value(a.value) for a in span.attributes},
                                }), flush=True)
                    answer = ExportTraceServiceResponse().SerializeToString()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                def log_message(self, *args):
                    pass

            server = HTTPServer(("127.0.0.1", 0), Handler)
            print("port", server.server_address[1], flush=True)
            server.timeout = 0.5
            import time
            deadline = time.time() + 150  # bounded: it stops by itself
            while time.time() < deadline:
                server.handle_request()
            """

        init() async throws {
            let python = try #require(ConformanceTests.which("python3"), "python3 is needed")
            let process = Process()
            process.executableURL = python
            process.arguments = ["-c", Self.script]
            let stdout = Pipe()
            let stderr = Pipe()
            process.standardOutput = stdout
            process.standardError = stderr
            let output = DaemonProcess.LogBuffer()
            stdout.fileHandleForReading.readabilityHandler = { output.append($0.availableData) }
            try process.run()
            var port: Int?
            for _ in 0..<200 where port == nil {
                port = output.value.split(separator: "\n").first { $0.hasPrefix("port ") }.flatMap { Int($0.dropFirst(5)) }
                if port == nil {
                    guard process.isRunning else { break }
                    try await Task.sleep(for: .milliseconds(25))
                }
            }
            guard let port else {
                process.terminate()
                let error = String(decoding: stderr.fileHandleForReading.availableData, as: UTF8.self)
                throw FlowError(.internalError, "the OTLP receiver did not start (is opentelemetry-proto installed?): \(error)")
            }
            self.process = process
            self.port = port
            self.output = output
        }

        var spans: [Span] {
            self.output.value.split(separator: "\n").filter { $0.hasPrefix("{") }.compactMap {
                try? JSONDecoder().decode(Span.self, from: Data($0.utf8))
            }
        }

        /// Waits (bounded) until `condition` holds for what arrived.
        func spans(until condition: ([Span]) -> Bool) async throws -> [Span] {
            for _ in 0..<200 {
                let spans = self.spans
                if condition(spans) { return spans }
                try await Task.sleep(for: .milliseconds(25))
            }
            return self.spans
        }

        func stop() {
            // SIGKILL: the receiver can inherit a blocked SIGTERM from the test runner (seen here:
            // SIGTERM left it running to its own deadline).
            if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
            self.process.waitUntilExit()
        }
    }

    static func traceparent(_ trace: String, _ parent: String) -> String { "00-\(trace)-\(parent)-01" }

    @Test func callsAreSpansContinuedFromTraceparentOverBothTransportsAndThroughAProvider() async throws {
        let receiver = try await Receiver()
        defer { receiver.stop() }
        let httpTrace = "0af7651916cd43dd8448eb211c80319c"
        let socketTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
        let providerTrace = "11112222333344445555666677778888"
        let parent = "b7ad6b7169203331"
        let failureID = Locked<String?>(nil)
        var frameTraceparent: String?
        try await LiveGateway.runShipped(configure: {
            $0.otlpEndpoint = "http://127.0.0.1:\(receiver.port)/v1/traces"
            $0.otlpExportInterval = .milliseconds(50)
            $0.otelServiceName = "flowgate-test"
        }) { live in
            // HTTP, with the traceparent header.
            let http = try await live.http("/api/inventory/inventory/device/", headers: [HTTPField.Name("traceparent")!: Self.traceparent(httpTrace, parent)])
            #expect(http.head.status == .ok)
            // WebSocket, with the envelope's field; and a failure, which carries its errorid.
            try await live.webSocket("/ws") { socket in
                try await socket.send(#"{"method":"OPEN","namespace":"inventory/device","objectid":"nope","traceparent":"\#(Self.traceparent(socketTrace, parent))"}"#)
                let failure = try await socket.receive()
                #expect(failure.errorcode == .doNotExist)
                failureID.withLock { $0 = failure.errorid }
                // No traceparent, or a malformed one: a new trace.
                try await socket.send(#"{"method":"LIST","namespace":"inventory/device","traceparent":"00-zz-nonsense-01"}"#)
                #expect(try await socket.receive().success)
            }
            // Through a provider: the call frame carries the trace on.
            try await ScriptedProvider.with(live, registration: ProviderTests.registration("demo/jobs")) { _ in .answer(#"{"ok":true}"#) } _: { provider in
                let frame = #"{"method":"LIST","namespace":"demo/jobs","requestid":"t","traceparent":"\#(Self.traceparent(providerTrace, parent))"}"#
                let (answer, _) = try await ProviderTests.call(live, frame)
                #expect(answer.success)
                frameTraceparent = provider.calls.last?["traceparent"]?.stringValue
            }
        }
        let spans = try await receiver.spans { spans in spans.contains { $0.traceId == providerTrace && $0.kind == 3 } }

        let httpSpan = try #require(spans.first { $0.traceId == httpTrace }, "\(spans.map(\.name))")
        #expect(httpSpan.parentSpanId == parent)
        #expect(httpSpan.name == "LIST inventory/device")
        #expect(httpSpan.kind == 2, "SPAN_KIND_SERVER")
        #expect(httpSpan.service == "flowgate-test")
        #expect(httpSpan.attributes["flow.transport"] == "http" && httpSpan.attributes["flow.namespace"] == "inventory/device")
        #expect(httpSpan.attributes["flow.method"] == "LIST" && httpSpan.attributes["flow.errorcode"] == "OK")

        let socketSpan = try #require(spans.first { $0.traceId == socketTrace })
        #expect(socketSpan.parentSpanId == parent && socketSpan.attributes["flow.transport"] == "websocket")
        #expect(socketSpan.attributes["flow.errorcode"] == "DO_NOT_EXIST")
        #expect(socketSpan.attributes["flow.errorid"] == failureID.withLock { $0 })
        #expect(socketSpan.status == 2, "STATUS_CODE_ERROR")

        let fresh = spans.filter { $0.name == "LIST inventory/device" && $0.attributes["flow.transport"] == "websocket" }
        #expect(fresh.count == 1 && fresh.allSatisfy { $0.parentSpanId.isEmpty && $0.traceId.count == 32 && ![httpTrace, socketTrace].contains($0.traceId) })

        // The provider call: the server span, the forwarding client span inside it, and the
        // provider's traceparent all in one trace, each the parent of the next.
        let server = try #require(spans.first { $0.traceId == providerTrace && $0.kind == 2 })
        let client = try #require(spans.first { $0.traceId == providerTrace && $0.kind == 3 })
        #expect(server.parentSpanId == parent && server.name == "LIST demo/jobs")
        #expect(client.parentSpanId == server.spanId && client.name == "forward demo/jobs")
        #expect(frameTraceparent == Self.traceparent(providerTrace, client.spanId), "\(frameTraceparent ?? "none")")
    }

    @Test func samplingFollowsTheCallersFlagAndTheRatio() async throws {
        let receiver = try await Receiver()
        defer { receiver.stop() }
        let sampled = "aaaabbbbccccddddeeeeffff00001111"
        let unsampled = "99998888777766665555444433332222"
        try await LiveGateway.runShipped(configure: {
            $0.otlpEndpoint = "http://127.0.0.1:\(receiver.port)/v1/traces"
            $0.otlpExportInterval = .milliseconds(50)
            $0.otlpSampleRatio = 0
        }) { live in
            try await live.webSocket("/ws") { socket in
                // Ratio 0: a call without a traceparent is not traced, nor one whose caller did not sample.
                try await socket.send(#"{"method":"LIST","namespace":"inventory/device"}"#)
                #expect(try await socket.receive().success)
                try await socket.send(#"{"method":"LIST","namespace":"inventory/device","traceparent":"\#(Self.traceparent(unsampled, "b7ad6b7169203331").dropLast(2))00"}"#)
                #expect(try await socket.receive().success)
                // A caller's sampled trace is always continued.
                try await socket.send(#"{"method":"LIST","namespace":"inventory/device","traceparent":"\#(Self.traceparent(sampled, "b7ad6b7169203331"))"}"#)
                #expect(try await socket.receive().success)
            }
        }
        let spans = try await receiver.spans { spans in spans.contains { $0.traceId == sampled } }
        #expect(spans.map(\.traceId) == [sampled], "\(spans.map(\.traceId))")
    }

    @Test func withoutAnEndpointNothingIsTracedAndProvidersGetNoTraceparent() async throws {
        try await LiveGateway.runShipped { live in
            try await ScriptedProvider.with(live, registration: ProviderTests.registration("demo/jobs")) { _ in .answer(#"{"ok":true}"#) } _: { provider in
                let frame = #"{"method":"LIST","namespace":"demo/jobs","traceparent":"\#(Self.traceparent("11112222333344445555666677778888", "b7ad6b7169203331"))"}"#
                let (answer, _) = try await ProviderTests.call(live, frame)
                #expect(answer.success)
                #expect(provider.calls.last?["traceparent"] == nil)
            }
        }
    }
}
