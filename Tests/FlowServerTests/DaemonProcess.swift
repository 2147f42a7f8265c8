import Foundation
import HTTPTypes
import FlowProtocol

/// The real `flowgate` executable, started as a child process in a fresh temporary folder.
final class DaemonProcess: LoopbackClient, Sendable {
    let process: Process
    let folder: URL
    let port: Int
    var credentialHeaders: HTTPFields { LiveGateway.adminHeaders }
    private let output: LogBuffer
    private let stderr: Pipe

    /// What the daemon wrote to standard error, appended to from the pipe's reader.
    final class LogBuffer: Sendable {
        private let text = Locked("")
        func append(_ data: Data) { self.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        var value: String { self.text.withLock { $0 } }
    }

    /// Starts `flowgate serve --port 0 <arguments>` and waits until it listens.
    /// `environment` adds to (or overrides) the test defaults: the first admin's password, a cheap bcrypt.
    static func start(
        _ arguments: [String] = [], in existing: URL? = nil, environment extra: [String: String] = [:], executable: URL? = nil
    ) async throws -> DaemonProcess {
        let folder = existing ?? FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = try executable ?? Self.binary()
        process.arguments = ["serve", "--port", "0"] + arguments
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["FLOWGATE_ADMIN_PASSWORD"] = LiveGateway.adminPassword
        environment["FLOWGATE_BCRYPT_COST"] = "4"
        environment.merge(extra) { $1 }
        process.environment = environment
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        let output = LogBuffer()
        stderr.fileHandleForReading.readabilityHandler = { handle in output.append(handle.availableData) }
        try process.run()
        for _ in 0..<400 {
            if let port = Self.port(in: output.value) {
                return DaemonProcess(process: process, folder: folder, port: port, output: output, stderr: stderr)
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        throw StartFailed(log: output.value, status: process.terminationStatus)
    }

    private init(process: Process, folder: URL, port: Int, output: LogBuffer, stderr: Pipe) {
        self.process = process
        self.folder = folder
        self.port = port
        self.output = output
        self.stderr = stderr
    }

    /// Everything the daemon logged so far.
    var log: String { self.output.value }

    func signal(_ signal: Int32) {
        kill(self.process.processIdentifier, signal)
    }

    /// Waits (bounded) for the process to end; its exit status, or nil if it is still running.
    func waitForExit(timeout: Duration = .seconds(15)) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !self.process.isRunning else { return nil }
        self.stderr.fileHandleForReading.readabilityHandler = nil
        return self.process.terminationReason == .exit ? self.process.terminationStatus : -self.process.terminationStatus
    }

    /// Stops the daemon if it still runs and removes its folder (unless asked to keep it).
    func cleanUp(keepFolder: Bool = false) {
        if self.process.isRunning {
            self.process.terminate()
            // Polled, bounded: Foundation's waitUntilExit, called here on a cooperative thread,
            // once never returned (the daemon had exited; the test process hung with every
            // thread idle and the next node never told to stop).
            let deadline = Date() + 20
            while self.process.isRunning && Date() < deadline { usleep(20_000) }
            if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        }
        self.stderr.fileHandleForReading.readabilityHandler = nil
        if !keepFolder { try? FileManager.default.removeItem(at: self.folder) }
    }

    struct StartFailed: Error, CustomStringConvertible {
        let log: String
        let status: Int32
        var description: String { "flowgate did not start listening:\n\(self.log)" }
    }

    static func port(in log: String) -> Int? {
        guard let range = log.range(of: #"flow\.address=[0-9.]+:([0-9]+)"#, options: .regularExpression) else { return nil }
        return Int(log[range].split(separator: ":").last ?? "")
    }

    /// Runs `flowgate <arguments>` to completion: (exit status, standard output + error).
    static func run(_ arguments: [String]) async throws -> (Int32, String) {
        try await Self.runTool(try Self.binary(), arguments)
    }

    /// Runs any program to completion: (exit status, standard output + error).
    /// It runs in a temporary folder, so tools that leave caches behind leave them there.
    /// ``runTool(_:_:environment:)`` on a thread of its own: a tool that talks to an in-process
    /// gateway must not block a cooperative thread the gateway needs (two such tests at once on
    /// 2 cores left the gateway no thread to answer with).
    static func runTool(_ executable: URL, _ arguments: [String], environment extra: [String: String] = [:]) async throws -> (Int32, String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try Self.runToolBlocking(executable, arguments, environment: extra) })
            }
        }
    }

    static func runToolBlocking(_ executable: URL, _ arguments: [String], environment extra: [String: String] = [:]) throws -> (Int32, String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["FLOWGATE_ADMIN_PASSWORD"] = LiveGateway.adminPassword
        environment["FLOWGATE_BCRYPT_COST"] = "4"
        environment.merge(extra) { $1 }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The `flowgate` executable built next to this test bundle.
    /// The release build `.ci/run` (the README's test command) makes before the tests, for what a
    /// debug build is too slow to drive: `swift build -c release --product flowgate --scratch-path .build-release`.
    static func releaseBinary() throws -> URL {
        let binary = LiveGateway.repository.appendingPathComponent(".build-release/release/flowgate")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [
                NSFilePathErrorKey: binary.path,
                NSLocalizedDescriptionKey: "no release build: swift build -c release --product flowgate --scratch-path .build-release",
            ])
        }
        return binary
    }

    static func binary() throws -> URL {
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
