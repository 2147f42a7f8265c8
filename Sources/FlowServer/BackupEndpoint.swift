import FlowAuth
import FlowCore
import FlowProtocol
import FlowSchema
import FlowStore
import Foundation
import Logging

/// `system/backup` (SPEC §10), for whoever holds `system/backup:RUN` (admins): over HTTP,
/// `RUN snapshot` answers with the database itself (`application/octet-stream`), taken while
/// writes go on; `RUN restore` with a snapshot as the body (`application/octet-stream`) checks
/// it, keeps the current database beside it as `flowgate.sqlite.before-restore-<time>`, and
/// puts the snapshot's data, users and tokens in force at once: the auth directory reloads
/// (sockets whose credential is gone close with 4001), and every watch ends with `restored`.
///
/// ```sh
/// curl -u admin:… -H 'Flow-Request-Method: RUN' -H 'Content-Type: application/json' -d '{}' \
///      http://127.0.0.1:8080/api/system/system/backup/snapshot -o flowgate.snapshot
/// curl -u admin:… -H 'Flow-Request-Method: RUN' -H 'Content-Type: application/octet-stream' \
///      --data-binary @flowgate.snapshot http://127.0.0.1:8080/api/system/system/backup/restore
/// ```
struct BackupEndpoint: Endpoint {
    static let namespace = Namespace("system/backup")!

    let definition = EndpointDefinition(
        namespace: Self.namespace,
        title: "Database snapshot (RUN snapshot) and restore (RUN restore, the snapshot as the body)",
        methods: [.run],
        schema: ["type": "object", "description": "{} for RUN snapshot; RUN restore takes the snapshot file instead (application/octet-stream)"],
        binaryMethods: [.run],
        resultSchema: [
            "type": "object", "description": "What RUN restore put in place (RUN snapshot answers with the file itself).",
            "properties": [
                "objects": ["type": "integer"], "users": ["type": "integer"], "tokens": ["type": "integer"],
                "epoch": ["type": "string", "description": "The change log's new epoch: positions from before the restore are CURSOR_EXPIRED"],
                "previous": ["type": "string", "description": "The file in the data directory that keeps the database as it was"],
            ],
        ]
    )
    let store: SQLiteStore
    let auth: AuthService
    let watches: WatchHub
    let dataDirectory: String

    /// `data` must be an object (`{}`): a JSON body that is not one is `VALIDATION_FAILED`.
    private static let dataValidator: (any DataValidator)? = try? JSONSchema(["type": "object"])

    func validator(for method: FlowProtocol.Method) -> (any DataValidator)? { Self.dataValidator }

    /// A snapshot of a large database takes as long as it takes; the caller hanging up still cancels.
    var handlesOwnTimeout: Bool { true }

    func handle(_ call: Call, context: CallContext) async throws -> Reply {
        let scratch = GatewayConfiguration.scratchDirectory(dataDirectory: self.dataDirectory)
        var logger = context.logger
        logger[metadataKey: "flow.user"] = context.identity.username.map { .string($0) }
        switch call.objectid {
        case "snapshot":
            guard context.attachment == nil else { throw FlowError(.invalidRequest, "RUN snapshot takes a JSON body ({}), not a file") }
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            let path = (scratch as NSString).appendingPathComponent("snapshot-\(UUID().uuidString.lowercased()).sqlite")
            try await self.store.backup(to: path)
            logger.notice("database snapshot taken", metadata: ["flow.audit": "backup"])
            var reply = Reply()
            reply.attachment = Attachment(path: path)
            return reply
        case "restore":
            guard let attachment = context.attachment else {
                throw FlowError(.dataRequired, "RUN restore takes the snapshot as the body, with Content-Type: application/octet-stream")
            }
            let previous = Gateway.previousDatabasePath(dataDirectory: self.dataDirectory)
            let result = try await self.store.restore(from: attachment.path, keepingPreviousAt: previous, scratch: scratch)
            try await self.auth.refresh()
            self.watches.restored(head: result.head)
            logger.notice(
                "database restored",
                metadata: ["flow.audit": "restore", "flow.objects": "\(result.summary.objects)", "flow.previous": .string(previous)]
            )
            return Reply(data: [
                "objects": .integer(Int64(result.summary.objects)), "users": .integer(Int64(result.summary.users)),
                "tokens": .integer(Int64(result.summary.tokens)), "epoch": .string(result.epoch),
                "previous": .string((previous as NSString).lastPathComponent),
            ])
        default:
            throw FlowError(.doNotExist, "system/backup runs 'snapshot' and 'restore'")
        }
    }
}

extension Gateway {
    /// Where a restore keeps the database as it was: `flowgate.sqlite.before-restore-20261201T210512Z`
    /// in `dataDirectory` (sorts by time).
    public static func previousDatabasePath(dataDirectory: String) -> String {
        let stamp = Date.now.formatted(Date.ISO8601FormatStyle(dateSeparator: .omitted, timeSeparator: .omitted))
        return Self.databasePath(dataDirectory: dataDirectory) + ".before-restore-" + stamp
    }
}
