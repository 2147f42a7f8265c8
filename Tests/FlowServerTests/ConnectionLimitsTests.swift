@testable import FlowServer
import FlowCore
import FlowProtocol
import FlowTestSupport
import Foundation
import HTTPTypes
import Testing

/// SPEC §11 "HTTP connections are reaped": idle connections and slow request heads are closed,
/// heads are capped, connections are counted, and the body of a caller nobody knows is not read.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ConnectionLimitsTests {
    /// The state machine alone, with time passed in.
    @Test func deadlinesFollowWhatTheConnectionIsDoing() {
        let start = ContinuousClock.now
        func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }
        var state = ConnectionTimeouts(idleTimeout: .seconds(60), headTimeout: .seconds(10), maxHeadBytes: 100, now: start)
        #expect(state.deadline?.at == at(60_000) && state.deadline?.reason == .idle)
        state.received(30, now: at(1_000))
        #expect(state.deadline?.at == at(11_000) && state.deadline?.reason == .head, "the head must end 10 s after it began")
        state.received(30, now: at(5_000))
        #expect(state.deadline?.at == at(11_000), "more of the head does not extend it")
        #expect(!state.headTooLarge)
        state.received(50, headPart: 20, now: at(5_100))
        #expect(!state.headTooLarge, "only the head's own 20 of these 50 bytes count: 110 in all would be too large")
        state.headReceived(now: at(5_100))
        #expect(state.deadline?.at == at(65_100) && state.deadline?.reason == .body)
        state.received(1_000, now: at(20_000))
        #expect(state.deadline?.at == at(80_000), "body bytes keep the body alive")
        state.requestEnded()
        #expect(state.deadline == nil, "no deadline of its own while the handler works")
        state.responseEnded(now: at(30_000))
        #expect(state.deadline?.at == at(90_000) && state.deadline?.reason == .idle)
        state.received(200, now: at(31_000))
        #expect(state.headTooLarge)
        state.upgrade()
        #expect(state.deadline == nil && !state.headTooLarge, "a WebSocket is not watched here")
    }

    static func configure(_ configuration: inout GatewayConfiguration) {
        // Short, so the test is quick; stretched under a sanitizer, where a whole request can take longer.
        configuration.idleTimeout = TestTime.bound(.milliseconds(500))
        configuration.headTimeout = TestTime.bound(.milliseconds(400))
        configuration.maxHeadBytes = 2048
        configuration.maxConnections = 4
    }

    /// What an idle socket's task frames hold across the read loop's `await` is paid once per
    /// socket (SPEC §11's memory bound; flowgate-bench `--only memory` measures the whole). The
    /// configuration (hundreds of bytes) crept into these once and cost 3 KiB a socket.
    @Test func aSocketsReadLoopHoldsLittle() {
        #expect(MemoryLayout<WebSocketRoutes>.size == MemoryLayout<AnyObject>.size, "the routes are captured by every socket's handler: a reference")
        #expect(MemoryLayout<WebSocketConnection>.size <= 320, "\(MemoryLayout<WebSocketConnection>.size) bytes: keep the configuration out")
        #expect(MemoryLayout<WebSocketRoutes.Opening>.size <= 96, "what a socket keeps of its upgrade request")
    }

    @Test func slowHeadsIdleConnectionsAndLargeHeadsAreClosed() async throws {
        try await LiveGateway.run(configure: Self.configure) { live in
            let partial = try await RawSocket.connect(port: live.port)
            try await partial.write("GET /healthz HTTP/1.1\r\nHost: x\r\n")
            #expect(try await partial.waitForClose(timeout: .seconds(10)))
            #expect(partial.text.hasPrefix("HTTP/1.1 408"), "\(partial.text.prefix(60))")

            let silent = try await RawSocket.connect(port: live.port)
            #expect(try await silent.waitForClose(timeout: .seconds(10)))
            #expect(silent.bytes.isEmpty)

            let keptAlive = try await RawSocket.connect(port: live.port)
            try await keptAlive.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await keptAlive.waitForClose(timeout: .seconds(10)), "a keep-alive connection idle for long is closed")
            #expect(keptAlive.text.components(separatedBy: "HTTP/1.1 200").count == 3)

            let large = try await RawSocket.connect(port: live.port)
            try await large.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Large: " + String(repeating: "a", count: 3000) + "\r\n\r\n")
            #expect(try await large.waitForClose(timeout: .seconds(10)))
            #expect(large.text.hasPrefix("HTTP/1.1 431"), "\(large.text.prefix(60))")

            // A small head with a body in the same write is not a large head.
            let body = String(repeating: "x", count: 5000)
            let post = try await live.http("/api/test/test/echo/", method: .post, body: #"{"text":"\#(body)"}"#)
            #expect(try post.envelope().success)

            // A WebSocket is not an idle HTTP connection.
            try await live.webSocket { socket in
                try await Task.sleep(for: TestTime.bound(.milliseconds(1_200)))
                try await socket.send(#"{"method":"LIST","namespace":"test/echo"}"#)
                #expect(try await socket.receive().success)
            }
        }
    }

    @Test func connectionsBeyondTheCapAreClosedAtOnce() async throws {
        try await LiveGateway.run(configure: { Self.configure(&$0); $0.idleTimeout = .seconds(30) }) { live in
            var open: [RawSocket] = []
            for _ in 0..<4 {
                let socket = try await RawSocket.connect(port: live.port)
                try await socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await socket.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("\"ok\"") })
                open.append(socket)
            }
            let refused = try await RawSocket.connect(port: live.port)
            #expect(try await refused.waitForClose(timeout: .seconds(5)), "the fifth connection is closed")
            #expect(refused.bytes.isEmpty)
            await open[0].close()
            try await Task.sleep(for: .milliseconds(200))
            let next = try await RawSocket.connect(port: live.port)
            try await next.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await next.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("\"ok\"") })
            for socket in open.dropFirst() + [next] { await socket.close() }
        }
    }

    /// The body of a caller nobody knows is never read: 401 at once, and the connection closes
    /// instead of draining what the client goes on sending.
    @Test func anUnauthenticatedBodyIsNotRead() async throws {
        let authenticator = TokenTableAuthenticator(tokens: ["good": .testAdmin])
        try await LiveGateway.run(authenticator: authenticator, policy: ExactScopePolicy()) { live in
            let anonymous = try await RawSocket.connect(port: live.port)
            try await anonymous.write("POST /api/test/test/echo/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n{\"a\":")
            #expect(try await anonymous.waitForClose(timeout: .seconds(10)))
            #expect(anonymous.text.hasPrefix("HTTP/1.1 401"), "\(anonymous.text.prefix(60))")
            #expect(anonymous.text.lowercased().contains("connection: close"))
            // Over the limit by its length: 413 before anything is read, and closed.
            let huge = try await RawSocket.connect(port: live.port)
            try await huge.write("POST /api/test/test/echo/ HTTP/1.1\r\nHost: x\r\nFlow-Auth-Token: good\r\nContent-Length: 90000000\r\n\r\n")
            #expect(try await huge.waitForClose(timeout: .seconds(10)))
            #expect(huge.text.hasPrefix("HTTP/1.1 413"))
            // A known caller's body is read as before.
            let known = try await live.http("/api/test/test/echo/", method: .post, headers: [.flowAuthToken: "good", .contentType: "application/json"], body: #"{"a":1}"#)
            #expect(try known.envelope().data?["data"] == ["a": 1])
            // Bad JSON from a known caller is still INVALID_JSON (SPEC §3 step 1).
            let bad = try await live.http("/api/test/test/echo/", method: .post, headers: [.flowAuthToken: "good"], body: "{nope")
            #expect(try bad.envelope().errorcode == .invalidJSON)
        }
    }
}
