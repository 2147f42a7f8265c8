import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import Foundation
import HTTPTypes
import NIOWebSocket
import ServiceLifecycle
import HummingbirdTesting
import Synchronization
import Testing
import WSCore

@Suite(.serialized, .timeLimit(.minutes(2)))
struct ShutdownTests {
    /// Drain: calls in flight finish, new calls answer SHUTTING_DOWN, then sockets close with 1001.
    @Test func drainFinishesRunningCallsThenClosesWith1001() async throws {
        let echo = EchoEndpoint()
        try await LiveGateway.run(endpoints: [echo]) { live in
            let close = try await live.webSocket { socket in
                try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"slow","requestid":"slow","parameters":{"sleep_ms":400}}"#)
                while echo.totalCalls == 0 { try await Task.sleep(for: .milliseconds(5)) }
                await live.group.triggerGracefulShutdown()
                while !live.gateway.dispatcher.isDraining { try await Task.sleep(for: .milliseconds(5)) }
                try await socket.send(#"{"method":"LIST","namespace":"test/echo","requestid":"late"}"#)
                let late = try await socket.receive()
                #expect(late.errorcode == .shuttingDown)
                #expect(late.requestid == .string("late"))
                let slow = try await socket.receive()
                #expect(slow.requestid == .string("slow"))
                #expect(slow.success)
                try await socket.expectClosed()
            }
            #expect(close?.closeCode == .goingAway)
        }
    }

    /// The real binary: starts with defaults in an empty folder, serves, and exits 0 on SIGTERM
    /// after closing its sockets with 1001.
    @Test func flowgateServeExitsZeroOnSIGTERM() async throws {
        let binary = try Self.flowgateBinary()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-sigterm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--port", "0"]
        process.currentDirectoryURL = folder
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        let output = Mutex("")
        stderr.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            output.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        var port: Int?
        for _ in 0..<200 where port == nil {
            try await Task.sleep(for: .milliseconds(50))
            port = output.withLock { Self.port(in: $0) }
        }
        let boundPort = try #require(port, "no 'flowgate listening' line in: \(output.withLock { $0 })")
        #expect(output.withLock { $0.contains("OPEN ACCESS") })

        let client = TestClient(host: "127.0.0.1", port: boundPort)
        client.connect()
        let health = try await client.execute(.init("/healthz", method: .get))
        #expect(health.head.status == .ok)
        try await client.shutdown()

        let live = LiveGatewayClient(port: boundPort)
        let close = try await live.webSocket { socket in
            try await socket.send(#"{"method":"LIST","namespace":"system/endpoints"}"#)
            #expect(try await socket.receive().success)
            kill(process.processIdentifier, SIGTERM)
            try await socket.expectClosed()
        }
        #expect(close?.closeCode == .goingAway)

        for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        stderr.fileHandleForReading.readabilityHandler = nil
        #expect(output.withLock { $0.contains("flowgate stopped") })
    }

    static func port(in log: String) -> Int? {
        guard let range = log.range(of: #"flow\.address=[0-9.]+:([0-9]+)"#, options: .regularExpression) else { return nil }
        return Int(log[range].split(separator: ":").last ?? "")
    }

    /// The `flowgate` executable built next to this test bundle.
    static func flowgateBinary() throws -> URL {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("flowgate"),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".build/debug/flowgate"),
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: candidates.map(\.path).joined(separator: ", ")])
        }
        return found
    }
}
