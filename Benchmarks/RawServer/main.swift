// flowgate-raw: the baseline for flowgate-bench. The same Hummingbird + WebSocket stack and
// settings as the gateway, with no gateway logic: `GET /ping` answers a small JSON body and
// `/ws` echoes text frames. Every gateway figure is reported as a ratio to this, measured in
// the same run.
//
//     flowgate-raw [port]        (default 8090; binds 127.0.0.1)
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8090
var logger = Logger(label: "flowgate-raw")
logger.logLevel = .warning

let router = Router(context: BasicWebSocketRequestContext.self)
let pong = ByteBuffer(string: #"{"status":0,"success":true,"data":{"pong":true},"dataType":"JSON"}"#)
router.get("/ping") { _, _ in
    Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: pong))
}
router.ws("/ws") { inbound, outbound, _ in
    for try await message in inbound.messages(maxSize: 1 << 20) {
        if case .text(let text) = message { try await outbound.write(.text(text)) }
    }
}
let app = Application(
    router: router,
    server: .http1WebSocketUpgrade(
        webSocketRouter: router,
        configuration: .init(ws: .init(maxFrameSize: 1 << 20, autoPing: .enabled(timePeriod: .seconds(30)), closeTimeout: .seconds(5), validateUTF8: true))
    ),
    configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil),
    logger: logger
)
try await app.runService()
