import ArgumentParser
import FlowClient
import FlowProtocol
import Foundation
import Logging

/// A subsystem serving `scheduler/queue` through the gateway (the namespace `Endpoints/scheduler/queue.json`
/// reserves): LIST the jobs, OPEN one, RUN `{"action": "pause" | "resume" | "cancel"}` on one.
///
/// Its token needs `provide:scheduler/*` (admin has `provide:*`):
///
///     FLOWGATE_TOKEN=$(swift run flowgate token create admin --name scheduler --scope 'provide:scheduler/*') \
///       swift run flowgate-example-provider
@main
struct ExampleProvider: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowgate-example-provider",
        abstract: "Serve scheduler/queue through a flowgate gateway (an example of FlowClient)."
    )

    @Option(help: "The gateway's WebSocket URL.")
    var url = "ws://127.0.0.1:8080/ws"

    @Option(help: "Sign in as this user; the password is read from FLOWGATE_PASSWORD. Without it, FLOWGATE_TOKEN is used.")
    var user: String?

    @Option(help: "Calls the gateway may have in flight here at once (flowgate-bench raises it).")
    var concurrency = 16

    func run() async throws {
        var logger = Logger(label: "scheduler")
        logger.logLevel = .info
        let environment = ProcessInfo.processInfo.environment
        let credential: FlowClientConfiguration.Credential
        if let user {
            guard let password = environment["FLOWGATE_PASSWORD"] else { throw ValidationError("--user needs FLOWGATE_PASSWORD") }
            credential = .basic(username: user, password: password)
        } else {
            guard let token = environment["FLOWGATE_TOKEN"], !token.isEmpty else { throw ValidationError("set FLOWGATE_TOKEN, or give --user with FLOWGATE_PASSWORD") }
            credential = .token(token)
        }
        let client = FlowClient(configuration: .init(url: self.url, credential: credential), logger: logger)
        let queue = JobQueue()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await client.run() }
            let id = try await client.provide(ProvidedEndpoint(namespace: Namespace("scheduler/queue")!, concurrency: self.concurrency)) { call in
                try await queue.handle(call)
            }
            logger.info("serving scheduler/queue", metadata: ["flow.provider": .string(id)])
        }
    }
}

/// The jobs, in memory.
actor JobQueue {
    private var jobs: [String: JSONValue] = [
        "nightly-backup": ["id": "nightly-backup", "name": "Nightly backup", "state": "queued"],
        "report-q3": ["id": "report-q3", "name": "Q3 report", "state": "running"],
        "reindex": ["id": "reindex", "name": "Search reindex", "state": "paused"],
    ]

    func handle(_ call: ProviderCall) throws -> JSONValue? {
        switch call.method {
        case .list:
            return .array(self.jobs.keys.sorted().compactMap { self.jobs[$0] })
        case .open:
            return try self.job(call.objectid)
        case .run:
            var job = try self.job(call.objectid)
            // The gateway checked data against Schemas/scheduler/job-action.schema.json.
            let action = call.data?["action"]?.stringValue ?? ""
            let next: String = switch action {
            case "pause": "paused"
            case "resume": "queued"
            default: "cancelled"
            }
            guard job["state"] != "cancelled" else { throw FlowError(.conflict, "The job is cancelled") }
            job = job.setting("state", to: .string(next)).setting("by", to: call.user.map(JSONValue.string) ?? .null)
            self.jobs[call.objectid ?? ""] = job
            return job
        default:
            throw FlowError(.methodNotAllowed, "scheduler/queue serves LIST, OPEN and RUN")
        }
    }

    private func job(_ id: String?) throws -> JSONValue {
        guard let job = id.flatMap({ self.jobs[$0] }) else { throw FlowError(.doNotExist, "No job has that id") }
        return job
    }
}

extension JSONValue {
    fileprivate func setting(_ key: String, to value: JSONValue) -> JSONValue {
        guard case .object(var object) = self else { return self }
        object[key] = value
        return .object(object)
    }
}
