import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import Foundation
import HTTPTypes
import NIOWebSocket
import ServiceLifecycle
import HummingbirdTesting
import Testing
import WSCore

@Suite(.serialized, .timeLimit(.minutes(2)))
struct ShutdownTests {
    /// Drain: calls in flight finish, new calls answer SHUTTING_DOWN, then sockets close with 1001.
    @Test func drainFinishesRunningCallsThenClosesWith1001() async throws {
        let echo = EchoEndpoint()
        // The slow call outlasts what a loaded machine takes to send the late one, within the drain.
        try await LiveGateway.run(configure: { $0.drainTimeout = .seconds(20) }, endpoints: [echo]) { live in
            let close = try await live.webSocket { socket in
                try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"slow","requestid":"slow","parameters":{"sleep_ms":2000}}"#)
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
        let daemon = try await DaemonProcess.start()
        defer { daemon.cleanUp() }
        #expect(daemon.log.contains("created the first user"))
        #expect(!daemon.log.contains(LiveGateway.adminPassword), "FLOWGATE_ADMIN_PASSWORD is never printed")

        #expect(try await daemon.http("/healthz").head.status == .ok)

        let close = try await daemon.webSocket { socket in
            try await socket.send(#"{"method":"LIST","namespace":"system/endpoints"}"#)
            #expect(try await socket.receive().success)
            daemon.signal(SIGTERM)
            try await socket.expectClosed()
        }
        #expect(close?.closeCode == .goingAway)
        #expect(try await daemon.waitForExit() == 0)
        #expect(daemon.log.contains("flowgate stopped"))
    }

    @Test func flowgateServeExitsZeroOnSIGINT() async throws {
        let daemon = try await DaemonProcess.start()
        defer { daemon.cleanUp() }
        daemon.signal(SIGINT)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func badConfigurationRefusesToStartNamingTheKey() async throws {
        do {
            let daemon = try await DaemonProcess.start(["--max-message-bytes", "lots"])
            daemon.cleanUp()
            Issue.record("started with a bad max_message_bytes")
        } catch let error as DaemonProcess.StartFailed {
            #expect(error.log.contains("max_message_bytes"))
        }
        do {
            let daemon = try await DaemonProcess.start(environment: ["FLOWGATE_ADMIN_PASSWORD": "short"])
            daemon.cleanUp()
            Issue.record("started with a first admin password too short to use")
        } catch let error as DaemonProcess.StartFailed {
            #expect(error.log.contains("admin_password") && !error.log.contains("short"))
        }
    }
}
