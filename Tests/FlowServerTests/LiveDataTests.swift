import FlowCore
import FlowProtocol
import FlowServer
import FlowStoreTestSupport
import FlowTestSupport
import Foundation
import HTTPTypes
import NIOWebSocket
import WSCore
import Testing

/// SPEC §13 against the real `flowgate` binary: watches over WebSocket, gapless and resumable
/// from the durable change log (issue 15's list).
@Suite(.serialized, .timeLimit(.minutes(5)))
struct LiveDataTests {
    static func daemon(_ environment: [String: String] = [:], in folder: URL? = nil) async throws -> DaemonProcess {
        try await HostileInputTests.daemon(environment, in: folder)
    }

    static func device(_ id: String, site: String = "HQ", model: String? = nil) -> String {
        var data: JSONObject = ["id": .string(id), "name": .string("device \(id)"), "serial": .string("SN-\(id)"), "site": .string(site)]
        if let model { data["model"] = .string(model) }
        return String(decoding: JSONValue.object(["method": "CREATE", "namespace": "inventory/device", "data": .object(data)]).encoded(), as: UTF8.self)
    }

    static func watch(_ fields: JSONObject, requestid: Int = 900) -> String {
        var data = fields
        if data["namespace"] == nil { data["namespace"] = "inventory/device" }
        let frame: JSONValue = ["method": "CREATE", "namespace": "system/watches", "requestid": .integer(Int64(requestid)), "data": .object(data)]
        return String(decoding: frame.encoded(), as: UTF8.self)
    }

    /// Writes `count` devices `prefix0…` on a socket of its own, one after the other, each acknowledged.
    static func write(_ daemon: DaemonProcess, prefix: String, count: Int, model: String? = nil) async throws -> [String] {
        let written = Locked<[String]>([])
        try await daemon.webSocket { socket in
            for index in 0..<count {
                let id = "\(prefix)\(index)"
                try await socket.send(Self.device(id, model: model))
                let answer = try await socket.receive()
                guard answer.success else { throw TestSocket.UnexpectedMessage(message: "\(answer)") }
                written.withLock { $0.append(id) }
            }
        }
        return written.withLock { $0 }
    }

    // MARK: List, then watch since

    @Test(arguments: StoreKind.allCases) func listThenWatchSinceMissesNothingAndRepeatsNothingWhileOthersWrite(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let daemon = try await Self.daemon(store)
            defer { daemon.cleanUp() }
            let total = 300
            async let writing = Self.write(daemon, prefix: "c", count: total)
            // List while the writer is under way, then watch since the listing's position.
            var listed: [String] = []
            var position = ""
            while listed.count < 20 {
                let page = try await daemon.http("/api/inventory/inventory/device/?parameters=%7B%22limit%22:1000%7D").envelope()
                listed = page.data?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                position = page.paging?["position"]?.stringValue ?? ""
            }
            #expect(listed.count < total, "the listing came before the writer finished")
            let events = Locked<[JSONObject]>([])
            let expected = total - listed.count
            let since = position
            try await daemon.webSocket { socket in
                try await socket.send(Self.watch(["since": .string(since)]))
                let created = try await socket.receiveObject()
                #expect(created["success"] == true, "\(created)")
                while events.withLock({ $0.count }) < expected {
                    let event = try await socket.receiveObject()
                    events.withLock { $0.append(event) }
                }
                // Nothing more: the next event is a marker written now.
                try await socket.send(Self.device("marker"))
                let next = try await socket.receiveObjects(2)
                #expect(next.contains { $0["event"] == "created" && $0["objectid"] == "marker" })
            }
            let written = try await writing
            #expect(written.count == total)
            let delivered = events.withLock { $0 }
            let ids = delivered.compactMap { $0["objectid"]?.stringValue }
            #expect(Set(ids).isDisjoint(with: listed), "nothing the listing already held")
            #expect(Set(ids).union(listed) == Set(written), "every write after the listing")
            #expect(ids.count == Set(ids).count, "each once")
            let sequences = delivered.compactMap { $0["position"]?.stringValue.flatMap(Self.sequence) }
            #expect(sequences == sequences.sorted() && sequences.count == delivered.count, "in commit order")
            #expect(ids == written.filter { !listed.contains($0) }, "in the writer's order")
        }
    }

    // MARK: Resume

    @Test(arguments: StoreKind.allCases) func aWatchResumesAfterItsSocketIsCut(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let daemon = try await Self.daemon(store)
            defer { daemon.cleanUp() }
            let last = Locked<String?>(nil)
            try await daemon.webSocket { socket in
                try await socket.send(Self.watch([:]))
                #expect(try await socket.receiveObject()["success"] == true)
                _ = try await Self.write(daemon, prefix: "a", count: 5)
                let events = try await socket.receiveObjects(5)
                last.withLock { $0 = events.last?["position"]?.stringValue }
            }
            // Written while nobody watches.
            let missed = try await Self.write(daemon, prefix: "b", count: 20)
            let since = try #require(last.withLock { $0 })
            try await daemon.webSocket { socket in
                try await socket.send(Self.watch(["since": .string(since)]))
                #expect(try await socket.receiveObject()["success"] == true)
                let events = try await socket.receiveObjects(20)
                #expect(events.compactMap { $0["objectid"]?.stringValue } == missed)
            }
        }
    }

    @Test(arguments: StoreKind.allCases) func everyAcknowledgedWriteIsDeliveredAfterAKillAndRestart(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let first = try await Self.daemon(store)
            let folder = first.folder
            defer { try? FileManager.default.removeItem(at: folder) }
            let since = Locked<String?>(nil)
            try await first.webSocket { socket in
                try await socket.send(Self.watch([:]))
                #expect(try await socket.receiveObject()["success"] == true)
                _ = try await Self.write(first, prefix: "seen", count: 3)
                let events = try await socket.receiveObjects(3)
                since.withLock { $0 = events.last?["position"]?.stringValue }
            }
            let acknowledged = try await Self.write(first, prefix: "unseen", count: 30)
            first.signal(SIGKILL)
            _ = try await first.waitForExit()

            let second = try await Self.daemon(store, in: folder)
            defer { second.cleanUp() }
            try await second.webSocket { socket in
                try await socket.send(Self.watch(["since": .string(try #require(since.withLock { $0 }))]))
                #expect(try await socket.receiveObject()["success"] == true)
                let events = try await socket.receiveObjects(30)
                #expect(events.compactMap { $0["objectid"]?.stringValue } == acknowledged)
            }
        }
    }

    @Test(arguments: StoreKind.allCases) func positionsTheLogNoLongerHoldsAreCursorExpired(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let daemon = try await Self.daemon(store.merging(["FLOWGATE_CHANGE_LOG_MAX_CHANGES": "10"]) { $1 })
            defer { daemon.cleanUp() }
            let early = try await daemon.http("/api/inventory/inventory/device/").envelope().paging?["position"]?.stringValue
            _ = try await Self.write(daemon, prefix: "r", count: 15)
            let recent = try await daemon.http("/api/inventory/inventory/device/").envelope().paging?["position"]?.stringValue
            try await daemon.webSocket { socket in
                try await socket.send(Self.watch(["since": .string(try #require(early))]))
                let expired = try await socket.receive()
                #expect(expired.errorcode == .cursorExpired, "\(expired)")
                // A position from another database (another epoch).
                try await socket.send(Self.watch(["since": "0000.3"]))
                #expect(try await socket.receive().errorcode == .cursorExpired)
                try await socket.send(Self.watch(["since": "not a position"]))
                #expect(try await socket.receive().errorcode == .invalidRequest)
                try await socket.send(Self.watch(["since": .string(try #require(recent))]))
                #expect(try await socket.receive().success)
            }
        }
    }

    // MARK: Filters and access

    @Test(arguments: StoreKind.allCases) func aFilterReportsObjectsEnteringAndLeavingIt(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let daemon = try await Self.daemon(store)
            defer { daemon.cleanUp() }
            try await daemon.webSocket { socket in
                try await socket.send(Self.watch(["filter": ["site": "A"]]))
                #expect(try await socket.receiveObject()["success"] == true)
                let writer = """
                    {"method":"CREATE","namespace":"inventory/device","data":{"id":"one","name":"one","serial":"SN-one","site":"A"}}
                    {"method":"UPDATE","namespace":"inventory/device","objectid":"one","data":{"site":"B"}}
                    {"method":"UPDATE","namespace":"inventory/device","objectid":"one","data":{"model":"still B"}}
                    {"method":"CREATE","namespace":"inventory/device","data":{"id":"two","name":"two","serial":"SN-two","site":"B"}}
                    {"method":"UPDATE","namespace":"inventory/device","objectid":"one","data":{"site":"A"}}
                    {"method":"DELETE","namespace":"inventory/device","objectid":"two"}
                    {"method":"DELETE","namespace":"inventory/device","objectid":"one"}
                    """
                try await daemon.webSocket { other in
                    for frame in writer.split(separator: "\n") {
                        try await other.send(String(frame))
                        #expect(try await other.receive().success)
                    }
                }
                let events = try await socket.receiveObjects(4)
                #expect(events.map { "\($0["event"]?.stringValue ?? "?") \($0["objectid"]?.stringValue ?? "?") \($0["reason"]?.stringValue ?? "")" } == [
                    "created one ", "deleted one filtered", "updated one ", "deleted one ",
                ])
                #expect(events[1]["data"]?["site"] == "B", "the object as it is now")
            }
        }
    }

    @Test(arguments: StoreKind.allCases) func losingAccessEndsTheWatch(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let daemon = try await Self.daemon(store)
            defer { daemon.cleanUp() }
            let created = try await daemon.http(
                "/api/auth/auth/users/", method: .post, body: #"{"username":"rita","password":"rita-password","roles":["reader"]}"#
            )
            #expect(try created.envelope().success)
            let rita: HTTPFields = [.authorization: "Basic " + Data("rita:rita-password".utf8).base64EncodedString()]
            try await daemon.webSocket(headers: rita) { socket in
                try await socket.send(Self.watch([:]))
                #expect(try await socket.receiveObject()["success"] == true)
                _ = try await Self.write(daemon, prefix: "x", count: 1)
                #expect(try await socket.receiveObject()["event"] == "created")
                let changed = try await daemon.http("/api/auth/auth/users/rita", method: .patch, body: #"{"roles":[]}"#)
                #expect(try changed.envelope().success)
                let ended = try await socket.receiveObject()
                #expect(ended["event"] == "ended" && ended["reason"] == "forbidden", "\(ended)")
                // The socket stays, the watch is gone.
                try await socket.send(#"{"method":"LIST","namespace":"system/watches"}"#)
                #expect(try await socket.receive().data == [])
            }
        }
    }

    @Test func watchesNeedTheScopeToListTheirNamespaceAndAreCapped() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_MAX_WATCHES_PER_SOCKET": "2"])
        defer { daemon.cleanUp() }
        #expect(try await daemon.http("/api/auth/auth/users/", method: .post, body: #"{"username":"nobody","password":"nobody-password","roles":[]}"#).envelope().success)
        let nobody: HTTPFields = [.authorization: "Basic " + Data("nobody:nobody-password".utf8).base64EncodedString()]
        try await daemon.webSocket(headers: nobody) { socket in
            try await socket.send(Self.watch([:]))
            #expect(try await socket.receive().errorcode == .forbidden)
        }
        try await daemon.webSocket { socket in
            for _ in 0..<2 {
                try await socket.send(Self.watch([:]))
                #expect(try await socket.receive().success)
            }
            try await socket.send(Self.watch([:]))
            #expect(try await socket.receive().errorcode == .rateLimited)
            try await socket.send(#"{"method":"DELETE","namespace":"system/watches","objectid":"w1"}"#)
            #expect(try await socket.receive().success)
            try await socket.send(#"{"method":"DELETE","namespace":"system/watches","objectid":"w1"}"#)
            #expect(try await socket.receive().errorcode == .doNotExist, "a socket deletes only watches it holds")
            try await socket.send(Self.watch(["namespace": "no/such"]))
            #expect(try await socket.receive().errorcode == .noSuchEndpoint)
            try await socket.send(Self.watch(["namespace": "inventory/device", "filter": ["a": ["nested": true]]]))
            #expect(try await socket.receive().errorcode == .validationFailed)
            try await socket.send(#"{"method":"LIST","namespace":"system/watches"}"#)
            #expect(try await socket.receive().data?.arrayValue?.count == 1)
        }
        let overHTTP = try await daemon.http("/api/system/system/watches/", method: .post, body: #"{"namespace":"inventory/device"}"#)
        #expect(try overHTTP.envelope().errorcode == .methodNotAllowed)
    }

    // MARK: Back-pressure

    @Test func aSlowSubscriberOverflowsWhileAFastOneLosesNothing() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_MAX_QUEUED_EVENTS": "20"])
        defer { daemon.cleanUp() }
        // The slow one: a socket that reads nothing once it is open.
        let slow = try await RawSocket.connect(port: daemon.port, autoRead: false)
        try await slow.write(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Authorization: \(LiveGateway.adminHeaders[.authorization]!)\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        slow.read()
        #expect(try await slow.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") })
        try await slow.write(bytes: .maskedTextFrame(Self.watch([:])))
        slow.read()
        #expect(try await slow.waitFor(timeout: .seconds(5)) { $0.serverTextMessages.count == 1 })

        let count = 300
        let model = String(repeating: "m", count: 40_000)
        let fastEvents = Locked<[JSONObject]>([])
        try await daemon.webSocket { fast in
            try await fast.send(Self.watch([:]))
            #expect(try await fast.receiveObject()["success"] == true)
            async let written = Self.write(daemon, prefix: "s", count: count, model: model)
            for _ in 0..<count {
                let event = try await fast.receiveObject()
                fastEvents.withLock { $0.append(event) }
            }
            #expect(try await written.count == count)
        }
        #expect(fastEvents.withLock { $0.compactMap { $0["objectid"]?.stringValue } } == (0..<count).map { "s\($0)" })

        // Now the slow one reads what it was sent: events in order, then the overflow.
        try await slow.startReading()
        #expect(try await slow.waitFor(timeout: .seconds(20)) { bytes in bytes.serverTextMessages.contains { $0.contains(#""event":"overflow""#) } })
        let messages = slow.bytes.serverTextMessages.dropFirst().compactMap { try? JSONValue(parsing: $0).objectValue }
        let overflow = try #require(messages.last)
        #expect(overflow["event"] == "overflow")
        let delivered = messages.dropLast()
        #expect(delivered.count < count, "it fell behind")
        #expect(delivered.compactMap { $0["objectid"]?.stringValue } == (0..<delivered.count).map { "s\($0)" }, "what it got, in order")
        let resumeFrom = try #require(overflow["position"]?.stringValue)
        if let lastDelivered = delivered.last?["position"]?.stringValue { #expect(resumeFrom == lastDelivered) }
        await slow.close()

        // Resuming since the overflow's position delivers the rest.
        try await daemon.webSocket { socket in
            try await socket.send(Self.watch(["since": .string(resumeFrom)]))
            #expect(try await socket.receiveObject()["success"] == true)
            let rest = try await socket.receiveObjects(count - delivered.count)
            #expect(rest.compactMap { $0["objectid"]?.stringValue } == (delivered.count..<count).map { "s\($0)" })
        }
    }

    // MARK: Providers and system/endpoints

    @Test func providersPublishLiveEventsAndEndpointsReportTheirComingAndGoing() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_PROVIDER_GRACE_MS": "300"])
        defer { daemon.cleanUp() }
        try await daemon.webSocket { watcher in
            try await watcher.send(Self.watch(["namespace": "system/endpoints"]))
            #expect(try await watcher.receiveObject()["success"] == true)
            try await daemon.webSocket { provider in
                try await provider.send(#"{"method":"CREATE","namespace":"system/providers","requestid":1,"data":{"namespace":"demo/jobs","methods":["LIST"]}}"#)
                #expect(try await provider.receive().success)
                let appeared = try await watcher.receiveObjects(2)
                #expect(appeared.map { "\($0["event"]?.stringValue ?? "") \($0["objectid"]?.stringValue ?? "")" } == ["created demo:jobs", "updated demo:jobs"])
                #expect(appeared[1]["data"]?["providers"] == 1 && appeared[1]["data"]?["served"] == true)
                #expect(appeared[1]["position"] == nil, "live events have no position")

                try await watcher.send(Self.watch(["namespace": "demo/jobs", "since": "abc.1"], requestid: 2))
                #expect(try await watcher.receive().errorcode == .invalidRequest, "no since on live-only events")
                try await watcher.send(Self.watch(["namespace": "demo/jobs", "filter": ["state": "queued"]], requestid: 3))
                #expect(try await watcher.receiveObject()["success"] == true)
                try await watcher.send(Self.watch(["namespace": "auth/users"], requestid: 4))
                #expect(try await watcher.receive().errorcode == .methodNotAllowed, "an endpoint with no events")

                try await provider.send(#"{"publish":{"namespace":"demo/jobs","objectid":"j1","event":"created","data":{"state":"running"}}}"#)
                try await provider.send(#"{"publish":{"namespace":"demo/jobs","objectid":"j2","event":"created","data":{"state":"queued"}}}"#)
                let published = try await watcher.receiveObject()
                #expect(published["event"] == "created" && published["objectid"] == "j2" && published["data"]?["state"] == "queued", "\(published)")
                #expect(published["watch"] == "w2")

                // Only what it serves, and only well-formed.
                try await provider.send(#"{"publish":{"namespace":"inventory/device","objectid":"x","event":"created","data":{}}}"#)
                #expect(try await provider.receive().errorcode == .forbidden)
                try await provider.send(#"{"publish":{"namespace":"demo/jobs","objectid":"x","event":"exploded"}}"#)
                #expect(try await provider.receive().errorcode == .invalidRequest)
            }
            // The provider left: the endpoint changes, then goes after its grace period.
            let gone = try await watcher.receiveObjects(2)
            #expect(gone.map { "\($0["event"]?.stringValue ?? "") \($0["objectid"]?.stringValue ?? "")" } == ["updated demo:jobs", "deleted demo:jobs"])
            #expect(gone[0]["data"]?["providers"] == 0)
        }
    }

    // MARK: Server-Sent Events

    /// Opens `GET path` with `Accept: text/event-stream` on a raw connection.
    static func stream(_ daemon: DaemonProcess, _ path: String, headers: [String] = []) async throws -> RawSocket {
        let socket = try await RawSocket.connect(port: daemon.port)
        let credential = headers.contains { $0.lowercased().hasPrefix("authorization:") } ? [] : ["Authorization: \(LiveGateway.adminHeaders[.authorization]!)"]
        let lines = ["GET \(path) HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"] + credential + headers
        try await socket.write(lines.joined(separator: "\r\n") + "\r\n\r\n")
        return socket
    }

    @Test(arguments: StoreKind.allCases) func aStreamResumesWithLastEventID(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let daemon = try await Self.daemon(store)
            defer { daemon.cleanUp() }
            let first = try await Self.stream(daemon, "/api/inventory/inventory/device/")
            #expect(try await first.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("retry: 2000") })
            #expect(first.text.hasPrefix("HTTP/1.1 200"))
            #expect(first.text.lowercased().contains("content-type: text/event-stream"))
            _ = try await Self.write(daemon, prefix: "e", count: 3)
            #expect(try await first.waitFor(timeout: .seconds(5)) { ServerSentEvents($0).events.count == 3 })
            let seen = ServerSentEvents(first.bytes).events
            #expect(seen.map(\.event) == ["created", "created", "created"])
            #expect(seen.compactMap { try? JSONValue(parsing: $0.data)["objectid"]?.stringValue } == ["e0", "e1", "e2"])
            let lastID = try #require(seen.last?.id)
            await first.close()

            let missed = try await Self.write(daemon, prefix: "f", count: 4)
            let second = try await Self.stream(daemon, "/api/inventory/inventory/device/", headers: ["Last-Event-ID: \(lastID)"])
            #expect(try await second.waitFor(timeout: .seconds(5)) { ServerSentEvents($0).events.count == 4 })
            #expect(ServerSentEvents(second.bytes).events.compactMap { try? JSONValue(parsing: $0.data)["objectid"]?.stringValue } == missed)
            await second.close()

            // ?since= does the same; a filter comes in parameters, as for LIST.
            let filtered = try await Self.stream(daemon, "/api/inventory/inventory/device/?since=\(lastID)&parameters=%7B%22filter%22:%7B%22id%22:%22f2%22%7D%7D")
            #expect(try await filtered.waitFor(timeout: .seconds(5)) { ServerSentEvents($0).events.count == 1 })
            #expect(ServerSentEvents(filtered.bytes).events.first.map { try? JSONValue(parsing: $0.data)["objectid"] } == "f2")
            await filtered.close()
        }
    }

    @Test func streamsFailBeforeTheyStartAsCallsDo() async throws {
        let daemon = try await Self.daemon(["FLOWGATE_MAX_SOCKETS": "1"])
        defer { daemon.cleanUp() }
        let cases: [(String, [String], Int, ErrorCode)] = [
            ("/api/inventory/inventory/device/", ["Authorization: Bearer nope"], 401, .unauthenticated),
            ("/api/inventory/no/such/", [], 404, .noSuchEndpoint),
            ("/api/inventory/inventory/device/?since=junk", [], 400, .invalidRequest),
            ("/api/inventory/inventory/device/", ["Last-Event-ID: 0000.1"], 410, .cursorExpired),
        ]
        for (path, headers, status, code) in cases {
            let socket = try await Self.stream(daemon, path, headers: headers)
            #expect(try await socket.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("errorcode") }, "\(path)")
            #expect(socket.text.hasPrefix("HTTP/1.1 \(status)"), "\(socket.text.prefix(40))")
            #expect(socket.text.contains(#""errorcode":"\#(code.rawValue)""#), "\(path)")
            await socket.close()
        }
        // Streams count toward max_sockets.
        let open = try await Self.stream(daemon, "/api/inventory/inventory/device/")
        #expect(try await open.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("retry:") })
        let refused = try await Self.stream(daemon, "/api/inventory/inventory/device/")
        #expect(try await refused.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("errorcode") })
        #expect(refused.text.hasPrefix("HTTP/1.1 429"))
        await open.close()
        await refused.close()
    }

    @Test(arguments: StoreKind.allCases) func revokingTheCredentialEndsTheStream(_ kind: StoreKind) async throws {
        try await kind.withDaemonEnvironment { store in
            let daemon = try await Self.daemon(store)
            defer { daemon.cleanUp() }
            let session = try await AuthEndToEndTests.login(daemon, "admin", LiveGateway.adminPassword)
            let stream = try await Self.stream(daemon, "/api/inventory/inventory/device/", headers: ["Authorization: Bearer \(session)"])
            #expect(try await stream.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("retry:") })
            let logout = try await daemon.http("/api/auth/auth/session/current", method: .delete, headers: AuthEndToEndTests.bearer(session))
            #expect(try logout.envelope().success)
            #expect(try await stream.waitForClose(timeout: .seconds(10)), "the stream ended")
        }
    }

    static func sequence(_ position: String) -> Int64? {
        position.split(separator: ".").last.flatMap { Int64($0) }
    }
}

extension TestSocket {
    /// The next message as a JSON object: a response or an event. A message that does not come
    /// within `limit` closes the socket from here, so the test fails instead of hanging.
    func receiveObject(within limit: Duration = .seconds(15)) async throws -> JSONObject {
        let outbound = self.outbound
        let text = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Task.sleep(for: TestTime.bound(limit))
                try await outbound.close(.normalClosure, reason: "nothing came")
            }
            defer { group.cancelAll() }
            return try await self.receiveText()
        }
        guard let text else { throw SocketClosed() }
        guard case .object(let object) = try JSONValue(parsing: text) else { throw UnexpectedMessage(message: text) }
        return object
    }

    func receiveObjects(_ count: Int) async throws -> [JSONObject] {
        var objects: [JSONObject] = []
        for _ in 0..<count { objects.append(try await self.receiveObject()) }
        return objects
    }
}

/// The events of a `text/event-stream` body (after the HTTP head; chunked framing is skipped by
/// reading only the `field: value` lines).
struct ServerSentEvents {
    struct Event {
        var id: String?
        var event: String
        var data: String
    }

    let events: [Event]

    init(_ bytes: [UInt8]) {
        // "\r\n" is one Character in Swift: make every line end a lone "\n" first.
        let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        var events: [Event] = []
        var current = Event(id: nil, event: "", data: "")
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty {
                if !current.data.isEmpty { events.append(current) }
                current = Event(id: nil, event: "", data: "")
            } else if line.hasPrefix("id: ") {
                current.id = String(line.dropFirst(4))
            } else if line.hasPrefix("event: ") {
                current.event = String(line.dropFirst(7))
            } else if line.hasPrefix("data: ") {
                current.data = String(line.dropFirst(6))
            }
        }
        self.events = events
    }
}

/// What a closed socket or stream leaves behind: nothing (in-process, to see the counts).
@Suite struct LiveDataCleanUpTests {
    @Test func closedSocketsAndStreamsLeaveNoWatchBehind() async throws {
        try await LiveGateway.runShipped { live in
            try await live.webSocket { socket in
                try await socket.send(LiveDataTests.watch([:]))
                #expect(try await socket.receive().success)
                #expect(live.gateway.watches.count == 1)
            }
            #expect(try await Self.eventually { live.gateway.watches.count == 0 }, "a closed socket's watches end")

            let stream = try await RawSocket.connect(port: live.port)
            try await stream.write(
                "GET /api/inventory/inventory/device/ HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: \(LiveGateway.adminHeaders[.authorization]!)\r\n\r\n"
            )
            #expect(try await stream.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("retry:") })
            #expect(live.gateway.watches.count == 1 && live.gateway.openSockets == 1, "a stream is a socket")
            await stream.close()
            // Its connection closing ends it at once (not only the next heartbeat, 15 s away).
            #expect(try await Self.eventually { live.gateway.watches.count == 0 && live.gateway.openSockets == 0 }, "a closed stream's watch ends")
        }
    }

    /// A stream is a response in progress, not an idle connection: the HTTP idle timeout does
    /// not reap it.
    @Test func aStreamOutlivesTheIdleTimeout() async throws {
        try await LiveGateway.runShipped(configure: { $0.idleTimeout = .milliseconds(300) }) { live in
            let stream = try await RawSocket.connect(port: live.port)
            try await stream.write(
                "GET /api/inventory/inventory/device/ HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: \(LiveGateway.adminHeaders[.authorization]!)\r\n\r\n"
            )
            #expect(try await stream.waitFor(timeout: .seconds(5)) { String(decoding: $0, as: UTF8.self).contains("retry:") })
            try await Task.sleep(for: .seconds(1))
            #expect(!stream.isClosed)
            let created = try await live.http(
                "/api/inventory/inventory/device/", method: .post, headers: [.contentType: "application/json"],
                body: #"{"id":"late","name":"late","serial":"SN-late"}"#
            )
            #expect(try created.envelope().success)
            #expect(try await stream.waitFor(timeout: .seconds(5)) { ServerSentEvents($0).events.contains { $0.data.contains(#""objectid":"late""#) } })
            await stream.close()
        }
    }

    /// Polls `condition` for up to five seconds (stretched under a sanitizer).
    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + TestTime.bound(.seconds(5))
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}
