import FlowCore
import FlowProtocol
import FlowStore
import FlowTestSupport
import FlowStoreTestSupport
import Foundation
import Testing

/// The fan-out's backlog is bounded (SPEC §11): writes faster than the fan-out leave their
/// changes in the log, where it reads them back — every event still arrives once, in order —
/// while a provider's publish is refused and system/endpoints watchers overflow.
@Suite struct FanOutBacklogTests {
    /// A socket that keeps the event frames it is sent.
    final class RecordingConnection: ConnectionHandle {
        let id = 1
        let frames = Locked<[JSONObject]>([])
        func send(_ text: [UInt8]) async {
            guard case .object(let object)? = try? JSONValue(parsing: text) else { return }
            self.frames.withLock { $0.append(object) }
        }
        func close(code: UInt16, reason: String) async {}
        var events: [JSONObject] { self.frames.withLock { $0.filter { $0["event"] != nil } } }
    }

    @Test(arguments: StoreKind.allCases)
    func changesPastTheBacklogAreReadBackFromTheLog(_ kind: StoreKind) async throws {
        try await CollectionHarness.with(kind) { harness async throws in
            let registry = EndpointRegistry()
            var configuration = WatchConfiguration()
            configuration.maxFanOutBacklog = 5
            let hub = WatchHub(log: harness.store, head: 0, registry: registry, policy: OpenAccessPolicy(), configuration: configuration, logger: .silent)
            try registry.register(WatchesEndpoint(hub: hub))
            try registry.register(SystemEndpointsEndpoint(registry: registry))
            try registry.register(harness.dispatcher.registry.endpoint(for: Namespace("inventory/device")!)!)
            harness.store.onCommit { hub.publish($0) }
            let dispatcher = Dispatcher(registry: registry, authenticator: OpenAccessAuthenticator(), policy: OpenAccessPolicy(), logger: .silent)
            let connection = RecordingConnection()
            let source = CallSource(transport: .websocket, connection: connection, tasking: .dedicated)
            for namespace in ["inventory/device", "system/endpoints"] {
                let create = Envelope(method: .create, namespace: Namespace("system/watches"), data: ["namespace": .string(namespace)])
                let answer = await dispatcher.dispatch(.call(CallRequest(envelope: create, origin: source.origin())), from: source) { $0.response }
                #expect(answer.success, "\(answer)")
            }

            // The fan-out is not running: 30 writes fill the backlog of 5 and the rest stay in the log.
            for index in 0..<30 { #expect(await harness.call(.create, data: ["id": .string("d\(index)"), "name": "n"]).success) }
            #expect(!hub.publish(LiveEvent(namespace: Namespace("inventory/device")!, objectid: "x", kind: .created, data: [:])), "a full backlog refuses a publish")
            hub.endpointChanged(.updated, WatchesEndpoint(hub: hub))

            let fanOut = Task { await hub.run() }
            defer { fanOut.cancel() }
            let deadline = ContinuousClock.now + TestTime.bound(.seconds(5))
            while connection.events.count < 31, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            let events = connection.events
            let devices = events.filter { $0["namespace"] == "inventory/device" }
            #expect(devices.compactMap { $0["objectid"]?.stringValue } == (0..<30).map { "d\($0)" }, "every write once, in commit order")
            #expect(events.contains { $0["event"] == "overflow" && $0["watch"] == "w2" }, "system/endpoints' watcher learns it missed events")
        }
    }
}
