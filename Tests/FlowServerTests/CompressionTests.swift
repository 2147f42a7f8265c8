import FlowProtocol
import FlowServer
import HTTPTypes
import Foundation
import Testing

/// permessage-deflate (RFC 7692) with a real client (Python `websockets`, which offers it by
/// default): agreed only when `websocket_compression` is on, calls answered through it, and a
/// message that inflates past `max_message_bytes` closes its socket with 1009, one that does not
/// inflate with 1002, and nothing else.
@Suite struct CompressionTests {
    static func probe(_ live: LiveGateway) async throws -> JSONValue {
        let python = try #require(ConformanceTests.which("python3"))
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Conformance/deflate_probe.py")
        let authorization = LiveGateway.adminHeaders[.authorization] ?? ""
        let (status, output) = try await DaemonProcess.runTool(python, [script.path, "\(live.port)", authorization, "\(live.gateway.configuration.maxMessageBytes)"])
        try #require(status == 0, "\(output)")
        return try JSONValue(parsing: String(output.split(separator: "\n").last ?? ""))
    }

    @Test func deflateIsAgreedWhenConfiguredAndBoundedByTheMessageLimit() async throws {
        try await LiveGateway.runShipped(configure: { $0.webSocketCompression = true }) { live in
            let result = try await Self.probe(live)
            #expect(result["extension"]?.stringValue?.hasPrefix("permessage-deflate") == true, "\(result)")
            #expect(result["list_count"] == 100)
            #expect(result["bomb"] == 1009, "\(result)")
            #expect(result["corrupt"] == 1002, "\(result)")
            #expect(result["after"] == true)
        }
    }

    @Test func withoutTheSettingNothingIsCompressed() async throws {
        try await LiveGateway.runShipped { live in
            let result = try await Self.probe(live)
            #expect(result["extension"] == .null, "\(result)")
            #expect(result["list_count"] == 100)
            // Uncompressed, the message is refused by its size before it is read.
            #expect(result["bomb"] == 1009, "\(result)")
            #expect(result["corrupt"] == .null, "nothing agreed: \(result)")
            #expect(result["after"] == true)
        }
    }
}
