import FlowCore
import FlowProtocol
import FlowServer
import FlowTestSupport
import HTTPTypes
import NIOWebSocket
import Testing
import WSCore

@Suite(.serialized, .timeLimit(.minutes(2)))
struct WebSocketTransportTests {
    @Test func framesWithoutRequestIDAreAnsweredInOrder() async throws {
        try await LiveGateway.run { live in
            try await live.webSocket { socket in
                // The first calls are the slowest: answers in completion order would come back reversed.
                for index in 0..<20 {
                    try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"\#(index)","parameters":{"sleep_ms":\#((20 - index) * 3)}}"#)
                }
                for index in 0..<20 {
                    let response = try await socket.receive()
                    #expect(response.success)
                    #expect(response.data?["objectid"] == .string("\(index)"))
                    #expect(response.requestid == nil)
                }
            }
        }
    }

    /// A timed-out call answers TIMEOUT and is cancelled; the socket and its other calls go on.
    @Test func timedOutCallsLeaveTheSocketWorking() async throws {
        try await LiveGateway.run(configure: { $0.callTimeout = .milliseconds(300) }) { live in
            try await live.webSocket { socket in
                try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"a","parameters":{"sleep_ms":5000}}"#)
                var response = try await socket.receive()
                #expect(response.errorcode == .timeout)
                try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"b","requestid":1,"parameters":{"sleep_ms":5000}}"#)
                try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"c","requestid":2}"#)
                response = try await socket.receive()
                #expect(response.requestid == .integer(2) && response.success)
                response = try await socket.receive()
                #expect(response.requestid == .integer(1) && response.errorcode == .timeout)
                try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"d"}"#)
                #expect(try await socket.receive().data?["objectid"] == "d")
            }
        }
    }

    @Test func pipelinedCallsWithRequestIDsAreAllAnsweredAndMatched() async throws {
        let echo = EchoEndpoint()
        try await LiveGateway.run(endpoints: [echo]) { live in
            try await live.webSocket { socket in
                for index in 0..<64 {
                    let requestid = index % 2 == 0 ? "\"r\(index)\"" : "\(index)"
                    try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"o\#(index)","requestid":\#(requestid),"parameters":{"sleep_ms":\#((64 - index) * 10)}}"#)
                }
                var answered: [String: String] = [:]
                var order: [String] = []
                for _ in 0..<64 {
                    let response = try await socket.receive()
                    #expect(response.success)
                    let requestid = try #require(response.requestid)
                    answered[requestid.description] = response.data?["objectid"]?.stringValue
                    order.append(requestid.description)
                    if case .integer(let value) = requestid { #expect(value % 2 == 1) }
                    if case .string(let value) = requestid { #expect(value.hasPrefix("r")) }
                }
                #expect(answered.count == 64)
                for index in 0..<64 {
                    let key = index % 2 == 0 ? "r\(index)" : "\(index)"
                    #expect(answered[key] == "o\(index)")
                }
                // They ran concurrently: the fastest (last sent) did not wait for the slowest.
                #expect(order.first != "r0")
            }
        }
        #expect(echo.peakConcurrency > 1)
    }

    @Test func inFlightLimitIsBackPressureNotErrors() async throws {
        let echo = EchoEndpoint()
        try await LiveGateway.run(configure: { $0.maxInFlightPerSocket = 4 }, endpoints: [echo]) { live in
            try await live.webSocket { socket in
                for index in 0..<24 {
                    try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"\#(index)","requestid":\#(index),"parameters":{"sleep_ms":20}}"#)
                }
                for _ in 0..<24 { #expect(try await socket.receive().success) }
            }
        }
        #expect(echo.totalCalls == 24)
        #expect(echo.peakConcurrency <= 4)
        #expect(echo.peakConcurrency > 1)
    }

    /// A client that leaves cancels its running calls: nobody is left to answer.
    @Test func closingTheSocketCancelsItsRunningCalls() async throws {
        let echo = EchoEndpoint()
        try await LiveGateway.run(endpoints: [echo]) { live in
            try await live.webSocket { socket in
                for index in 0..<3 {
                    try await socket.send(#"{"method":"OPEN","namespace":"test/echo","objectid":"\#(index)","requestid":\#(index),"parameters":{"sleep_ms":20000}}"#)
                }
                while echo.runningCalls < 3 { try await Task.sleep(for: .milliseconds(10)) }
            }
            // Bounded wait: without the cancellation the calls would run for 20 s.
            let deadline = ContinuousClock.now + .seconds(10)
            while echo.runningCalls > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(echo.runningCalls == 0)
            #expect(echo.totalCalls == 3)
        }
    }

    @Test func badFramesAreAnsweredAndTheSocketStaysUsable() async throws {
        try await LiveGateway.run { live in
            let close = try await live.webSocket { socket in
                try await socket.send("this is not json")
                let invalid = try await socket.receive()
                #expect(invalid.errorcode == .invalidJSON)
                #expect(invalid.errorid != nil)

                try await socket.sendFrame(opcode: .binary, Array(#"{"method":"LIST","namespace":"test/echo"}"#.utf8))
                #expect(try await socket.receive().errorcode == .invalidRequest)

                try await socket.send(#"{"method":"FETCH","namespace":"test/echo","requestid":"m"}"#)
                let unknown = try await socket.receive()
                #expect(unknown.errorcode == .unknownMethod)
                #expect(unknown.requestid == .string("m"))

                try await socket.send(String(repeating: "[", count: 65) + String(repeating: "]", count: 65))
                #expect(try await socket.receive().errorcode == .invalidJSON)

                try await socket.send(#"{"method":"OPEN","namespace":"test/echo"}"#)
                #expect(try await socket.receive().errorcode == .objectIDRequired)

                try await socket.send(#"{"method":"LIST","namespace":"test/echo","requestid":1}"#)
                let ok = try await socket.receive()
                #expect(ok.success)
                #expect(ok.requestid == .integer(1))
            }
            #expect(close?.closeCode == .normalClosure)
        }
    }

    @Test func oversizedMessageClosesWith1009AndTheDaemonKeepsServing() async throws {
        try await LiveGateway.run(configure: { $0.maxMessageBytes = 64 * 1024 }) { live in
            let payload = #"{"method":"RUN","namespace":"test/echo","objectid":"x","data":""# + String(repeating: "a", count: 64 * 1024) + "\"}"
            let close = try await live.webSocket { socket in
                try await socket.send(payload)
                try await socket.expectClosed()
            }
            #expect(close?.closeCode == .messageTooLarge)

            // The same size split over fragments is caught too.
            let fragmented = try await live.webSocket { socket in
                let bytes = Array(payload.utf8)
                try await socket.sendFrame(opcode: .text, Array(bytes[..<40_000]), fin: false)
                try await socket.sendFrame(opcode: .continuation, Array(bytes[40_000...]), fin: true)
                try await socket.expectClosed()
            }
            #expect(fragmented?.closeCode == .messageTooLarge)

            try await live.webSocket { socket in
                try await socket.send(#"{"method":"LIST","namespace":"test/echo"}"#)
                #expect(try await socket.receive().success)
            }
            #expect(try await live.http("/api/test/test/echo/").envelope().success)
        }
    }

    @Test func invalidUTF8ClosesWith1007() async throws {
        try await LiveGateway.run { live in
            let close = try await live.webSocket { socket in
                try await socket.sendFrame(opcode: .text, [0x7B, 0x22, 0xC3, 0x28, 0x22, 0x7D])
                try await socket.expectClosed()
            }
            #expect(close?.closeCode == .dataInconsistentWithMessage)
        }
    }

    @Test func socketTokenFromTheUpgradeAndFrameTokenWins() async throws {
        let authenticator = TokenTableAuthenticator(tokens: ["socket-token": .testAdmin, "frame-token": .testReader])
        try await LiveGateway.run(authenticator: authenticator, policy: ExactScopePolicy()) { live in
            try await live.webSocket("/ws?token=socket-token") { socket in
                try await socket.send(#"{"method":"CREATE","namespace":"test/echo","data":{}}"#)
                let admin = try await socket.receive()
                #expect(admin.data?["user"] == "admin")
                // The frame's own token wins: the reader may not CREATE.
                try await socket.send(#"{"method":"CREATE","namespace":"test/echo","data":{},"token":"frame-token"}"#)
                #expect(try await socket.receive().errorcode == .forbidden)
            }
            try await live.webSocket(headers: [.authorization: "Bearer socket-token"]) { socket in
                try await socket.send(#"{"method":"LIST","namespace":"test/echo"}"#)
                #expect(try await socket.receive().data?["user"] == "admin")
            }
            try await live.webSocket(headers: [.flowAuthToken: "frame-token"]) { socket in
                try await socket.send(#"{"method":"LIST","namespace":"test/echo"}"#)
                #expect(try await socket.receive().data?["user"] == "reader")
            }
            try await live.webSocket { socket in
                try await socket.send(#"{"method":"LIST","namespace":"test/echo"}"#)
                #expect(try await socket.receive().errorcode == .unauthenticated)
                try await socket.send(#"{"method":"LIST","namespace":"test/echo","token":"nonsense"}"#)
                #expect(try await socket.receive().errorcode == .unauthenticated)
            }
        }
        #expect(authenticator.credentialsSeen.contains(.token("socket-token")))
        #expect(authenticator.credentialsSeen.contains(.token("frame-token")))
    }

    /// SPEC §6.4: an upgrade with two different credentials is refused, never "pick one".
    @Test func anUpgradeWithTwoCredentialsIsRefused() async throws {
        try await LiveGateway.run { live in
            for extra in ["Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n", "Flow-Auth-Token: other\r\n"] {
                let raw = try await RawSocket.connect(port: live.port)
                let request = RawSocket.upgradeRequest("/ws?token=one").replacing("\r\n\r\n", with: "\r\n" + extra + "\r\n")
                try await raw.write(request)
                #expect(try await raw.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") })
                let head = String(decoding: raw.bytes, as: UTF8.self)
                #expect(head.hasPrefix("HTTP/1.1 400"), "\(head.prefix(80))")
                await raw.close()
            }
        }
    }

    @Test func socketAtANamespacePathUsesItAsTheDefault() async throws {
        try await LiveGateway.run(endpoints: [EchoEndpoint(), EchoEndpoint("test/other")]) { live in
            try await live.webSocket("/ws/test/echo/") { socket in
                try await socket.send(#"{"method":"LIST"}"#)
                #expect(try await socket.receive().data?["namespace"] == "test/echo")
                try await socket.send(#"{"method":"LIST","namespace":"test/other"}"#)
                #expect(try await socket.receive().data?["namespace"] == "test/other")
            }
            try await live.webSocket { socket in
                try await socket.send(#"{"method":"LIST"}"#)
                #expect(try await socket.receive().errorcode == .invalidRequest)
            }
            await #expect(throws: (any Error).self) {
                try await live.webSocket("/ws/Not%20A%20Namespace") { _ in }
            }
        }
    }

    @Test func socketLimitRefusesWith1013() async throws {
        try await LiveGateway.run(configure: { $0.maxSockets = 1 }) { live in
            try await live.webSocket { socket in
                // One round trip first: then the server is surely counting this socket (the
                // upgrade alone can complete before its handler registers it).
                try await socket.send(#"{"method":"LIST","namespace":"test/echo"}"#)
                #expect(try await socket.receive().success)
                // A raw client: the refusal's close frame comes right after the upgrade, and
                // swift-websocket's client can miss a close frame that arrives before its
                // handler runs (it then waits forever), which happened under load.
                let second = try await RawSocket.connect(port: live.port)
                try await second.write(RawSocket.upgradeRequest("/ws"))
                #expect(try await second.waitFor(timeout: .seconds(10)) { $0.containsCloseFrame(code: 1013) })
                await second.close()
                try await socket.send(#"{"method":"LIST","namespace":"test/echo"}"#)
                #expect(try await socket.receive().success)
            }
        }
    }

    @Test func idleSocketsArePingedAndDeadOnesClosed() async throws {
        try await LiveGateway.run(configure: { $0.pingInterval = .milliseconds(200) }) { live in
            // This client answers pings (its reads do): it stays open over several intervals.
            try await live.webSocket { socket in
                for _ in 0..<8 {
                    try await socket.send(#"{"method":"LIST","namespace":"test/echo","parameters":{"sleep_ms":100}}"#)
                    #expect(try await socket.receive().success)
                }
            }
            // A raw client that never answers: pinged, then closed with 1001.
            let raw = try await RawSocket.connect(port: live.port)
            try await raw.write(RawSocket.upgradeRequest("/ws"))
            #expect(try await raw.waitFor(timeout: .seconds(10)) { $0.containsCloseFrame(code: 1001) })
            #expect(raw.bytes.containsPing)
            await raw.close()
        }
    }
}
