import AsyncHTTPClient
import FlowProtocol
import Foundation
import HTTPTypes
import FlowTestSupport
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
import WSClient
import WSCore

/// TLS (SPEC §10) on the real binary: `--tls-cert`/`--tls-key` serve `https://` and `wss://`;
/// SIGHUP reloads the pair, an open socket lives on, and new connections get the new certificate.
/// The certificates are made at test time with `openssl` (Debian).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct TLSTests {
    /// A self-signed certificate for 127.0.0.1 named `name`: (certificate, key) paths in `folder`.
    static func makeCertificate(_ name: String, in folder: URL) async throws -> (String, String) {
        let openssl = try #require(ConformanceTests.which("openssl"), "openssl is needed (Debian package openssl)")
        let certificate = folder.appendingPathComponent("\(name).crt").path
        let key = folder.appendingPathComponent("\(name).key").path
        let (status, output) = try await DaemonProcess.runTool(openssl, [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", certificate,
        ])
        try #require(status == 0, "openssl failed: \(output)")
        return (certificate, key)
    }

    /// A client configuration that trusts only `certificate`.
    static func trusting(_ certificate: String) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate))
        return configuration
    }

    /// One HTTPS request to `daemon`, trusting only `certificate`: the envelope, or the error.
    static func https(_ daemon: DaemonProcess, _ path: String, trusting certificate: String) async throws -> Response {
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: try Self.trusting(certificate)))
        do {
            var request = HTTPClientRequest(url: "https://127.0.0.1:\(daemon.port)\(path)")
            for field in daemon.credentialHeaders { request.headers.add(name: field.name.rawName, value: field.value) }
            let response = try await client.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
            return try Response(decoding: Array(body.readableBytesView))
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Opens `wss://…/ws` trusting only `certificate` and runs `body` with it.
    static func wss(_ daemon: DaemonProcess, trusting certificate: String, _ body: @escaping @Sendable (TestSocket) async throws -> Void) async throws {
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders = daemon.credentialHeaders
        configuration.autoPing = .disabled
        // SNI cannot carry an IP address; the certificate names localhost too.
        configuration.sniHostname = "localhost"
        try await WebSocketClient.connect(
            url: "wss://127.0.0.1:\(daemon.port)/ws", configuration: configuration, tlsConfiguration: try Self.trusting(certificate), logger: .silent
        ) { inbound, outbound, _ in
            try await body(TestSocket(inbound: inbound, outbound: outbound))
        }
    }

    static let list = #"{"method":"LIST","namespace":"inventory/device","requestid":"tls"}"#

    @Test func bothTransportsServeTLSAndSIGHUPReloadsWithoutDroppingOpenSockets() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (first, firstKey) = try await Self.makeCertificate("flowgate-first", in: folder)
        let (second, secondKey) = try await Self.makeCertificate("flowgate-second", in: folder)
        // The daemon reads the pair from fixed paths; a renewal replaces the files, then SIGHUP.
        let servedCertificate = folder.appendingPathComponent("served.crt").path
        let servedKey = folder.appendingPathComponent("served.key").path
        try FileManager.default.copyItem(atPath: first, toPath: servedCertificate)
        try FileManager.default.copyItem(atPath: firstKey, toPath: servedKey)

        let repository = LiveGateway.repository
        let daemon = try await DaemonProcess.start([
            "--endpoints", repository.appendingPathComponent("Endpoints").path, "--schemas", repository.appendingPathComponent("Schemas").path,
            "--tls-cert", servedCertificate, "--tls-key", servedKey,
        ])
        defer { daemon.cleanUp() }

        // HTTPS and WSS with the first certificate; the second is not trusted yet.
        #expect(try await Self.https(daemon, "/api/inventory/inventory/device/", trusting: first).success)
        // (A handshake that fails: checked with the WebSocket client, which gives up at once; the
        // HTTP client retries until its deadline.)
        await #expect(throws: (any Error).self) { try await Self.wss(daemon, trusting: second) { _ in } }

        try await Self.wss(daemon, trusting: first) { socket in
            try await socket.send(Self.list)
            #expect(try await socket.receive().success)

            // Renewal: new files, SIGHUP. The open socket keeps working.
            for (source, target) in [(second, servedCertificate), (secondKey, servedKey)] {
                try FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: source, toPath: target)
            }
            daemon.signal(SIGHUP)
            var reloaded = false
            for _ in 0..<100 where !reloaded {
                reloaded = daemon.log.contains("TLS certificate reloaded")
                if !reloaded { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(reloaded, "\(daemon.log)")
            try await socket.send(Self.list)
            #expect(try await socket.receive().success, "the socket opened before the reload answers after it")

            // New connections see the second certificate, over both transports.
            #expect(try await Self.https(daemon, "/api/inventory/inventory/device/", trusting: second).success)
            await #expect(throws: (any Error).self) { try await Self.wss(daemon, trusting: first) { _ in } }
            try await Self.wss(daemon, trusting: second) { fresh in
                try await fresh.send(Self.list)
                #expect(try await fresh.receive().success)
            }
        }

        // A renewal that cannot be read keeps the pair in use.
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: servedCertificate))
        daemon.signal(SIGHUP)
        var refused = false
        for _ in 0..<100 where !refused {
            refused = daemon.log.contains("TLS certificate not reloaded")
            if !refused { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(refused, "\(daemon.log)")
        #expect(try await Self.https(daemon, "/api/inventory/inventory/device/", trusting: second).success)
    }

    @Test func aMissingOrHalfTLSConfigurationStopsTheDaemonNamingTheKey() async throws {
        let repository = LiveGateway.repository
        let shipped = ["--endpoints", repository.appendingPathComponent("Endpoints").path, "--schemas", repository.appendingPathComponent("Schemas").path]
        let (halfStatus, half) = try await DaemonProcess.run(["serve", "--port", "0", "--tls-cert", "/nonexistent.crt"] + shipped)
        #expect(halfStatus != 0)
        #expect(half.contains("tls_key"), "\(half)")
        let (missingStatus, missing) = try await DaemonProcess.run(["serve", "--port", "0", "--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"] + shipped)
        #expect(missingStatus != 0)
        #expect(missing.contains("tls_cert"), "\(missing)")
    }
}
