import FlowProtocol
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// `flowgate user|token` on the database of a running daemon (SPEC §9.6: the daemon honours the
/// change within one second).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CommandLineAuthTests {
    /// Answers 200 to any signed-in user, 401 to anyone else.
    static let profile = "/api/auth/auth/session/current"

    /// Runs `flowgate <arguments>` in `folder` with `input` on standard input: (status, stdout, stderr).
    /// On a thread of its own: waiting for a process must not hold a thread of the cooperative
    /// pool (with two cores, two such waits and a test that waits for async work deadlocked the run).
    static func flowgate(_ arguments: [String], in folder: URL, input: String? = nil) async throws -> (Int32, String, String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try Self.flowgateBlocking(arguments, in: folder, input: input) })
            }
        }
    }

    private static func flowgateBlocking(_ arguments: [String], in folder: URL, input: String? = nil) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = try DaemonProcess.binary()
        process.arguments = arguments
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["FLOWGATE_BCRYPT_COST"] = "4"
        process.environment = environment
        let stdout = Pipe()
        let stderr = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Polls `check` every 50 ms for up to `seconds`; whether it became true.
    static func eventually(within seconds: Double, _ check: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await check() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await check()
    }

    @Test func usersAndTokensMadeByTheCommandLineReachTheRunningDaemon() async throws {
        let daemon = try await DaemonProcess.start()
        defer { daemon.cleanUp() }
        let folder = daemon.folder

        let (added, _, addLog) = try await Self.flowgate(["user", "add", "carol", "--role", "reader", "--password-stdin"], in: folder, input: "carol-password\n")
        #expect(added == 0, "\(addLog)")
        let carol: HTTPFields = [.authorization: "Basic " + Data("carol:carol-password".utf8).base64EncodedString()]
        #expect(try await Self.eventually(within: 1.5) { try await daemon.http(Self.profile, headers: carol).head.status == .ok })

        let (created, token, createLog) = try await Self.flowgate(["token", "create", "carol", "--name", "cli", "--scope", "inventory/*:LIST"], in: folder)
        #expect(created == 0, "\(createLog)")
        let value = token.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(value.hasPrefix("fgpat_"))
        let idRange = try #require(createLog.range(of: #"token id [0-9a-f-]+"#, options: .regularExpression), "\(createLog)")
        let id = String(createLog[idRange].dropFirst("token id ".count))
        let bearer: HTTPFields = [.authorization: "Bearer \(value)"]
        #expect(try await Self.eventually(within: 1.5) { try await daemon.http(Self.profile, headers: bearer).head.status == .ok })

        let (revoked, _, revokeLog) = try await Self.flowgate(["token", "revoke", id], in: folder)
        #expect(revoked == 0, "\(revokeLog)")
        #expect(try await Self.eventually(within: 1.0) {
            try await daemon.http(Self.profile, headers: bearer).head.status == .unauthorized
        })

        let (changed, _, _) = try await Self.flowgate(["user", "passwd", "carol", "--password-stdin"], in: folder, input: "carol-new-password\n")
        #expect(changed == 0)
        #expect(try await Self.eventually(within: 1.0) {
            try await daemon.http(Self.profile, headers: carol).head.status == .unauthorized
        })

        let (widened, _, wideLog) = try await Self.flowgate(["token", "create", "carol", "--scope", "*:CREATE"], in: folder)
        #expect(widened == 1 && wideLog.contains("error:"))
        let (unknown, _, _) = try await Self.flowgate(["token", "revoke", "no-such-id"], in: folder)
        #expect(unknown == 1)
    }
}
