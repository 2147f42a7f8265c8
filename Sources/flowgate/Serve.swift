import ArgumentParser
import FlowCore
import FlowProtocol
import FlowServer
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `flowgate serve`: runs the daemon until SIGTERM or SIGINT, then drains and exits 0.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: "Every setting can also come from FLOWGATE_<KEY> or the --config file; flags win over the environment, which wins over the file. The README lists every key."
    )

    @Option(help: "Address to bind (default 127.0.0.1).") var host: String?
    @Option(help: "TCP port (default 8080; 0 picks a free one).") var port: String?
    @Option(help: "Data directory (default ./data).") var data: String?
    @Option(help: "PostgreSQL database several nodes share, postgres://user[:password]@host[:port]/database (default: the SQLite file in --data).") var store: String?
    @Option(help: "Endpoint definitions folder (default ./Endpoints).") var endpoints: String?
    @Option(help: "JSON Schema folder (default ./Schemas).") var schemas: String?
    @Option(help: "JSON config file.") var config: String?
    @Option(help: "Largest WebSocket message or HTTP body in bytes (default 1048576).") var maxMessageBytes: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).") var logLevel: String?
    @Option(help: "PEM certificate chain: serve https:// and wss:// (SIGHUP reloads it).") var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert.") var tlsKey: String?
    @Flag(help: "Serve the WebSocket echo route /diagnostics/echo (conformance tests).") var diagnosticsEcho = false
    @Flag(help: "Accept permessage-deflate from WebSocket clients that offer it.") var websocketCompression = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration: GatewayConfiguration
        do {
            configuration = try GatewayConfiguration.load(
                flags: self.flags(),
                environment: environment,
                file: try self.config.map(Self.readConfigFile) ?? environment["FLOWGATE_CONFIG"].map(Self.readConfigFile)
            )
        } catch {
            throw ValidationError("\(error)")
        }
        let level = configuration.logLevel
        // Every value is escaped on its way out: no client string can forge a line (SPEC §11).
        LoggingSystem.bootstrap { label in
            var handler = EscapingLogHandler(StreamLogHandler.standardError(label: label))
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "flowgate")
        let gateway: Gateway
        do {
            gateway = try await Gateway.build(
                configuration: configuration,
                logger: logger,
                onServerRunning: { port in
                    logger.notice("flowgate listening", metadata: ["flow.address": "\(configuration.host):\(port)"])
                }
            )
        } catch let error as EndpointCatalog.LoadError {
            logger.critical("refusing to start: the endpoint definitions have problems")
            throw ValidationError(error.description)
        }
        var services = gateway.services
        if let certificates = gateway.certificates { services.insert(CertificateReload(certificates: certificates, logger: logger), at: 0) }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
        logger.notice("flowgate stopped")
    }

    private func flags() -> [String: String] {
        var flags: [String: String] = [:]
        flags["host"] = self.host
        flags["port"] = self.port
        flags["data"] = self.data
        flags["store"] = self.store
        flags["endpoints"] = self.endpoints
        flags["schemas"] = self.schemas
        flags["max_message_bytes"] = self.maxMessageBytes
        flags["log_level"] = self.logLevel
        flags["tls_cert"] = self.tlsCert
        flags["tls_key"] = self.tlsKey
        if self.diagnosticsEcho { flags["diagnostics_echo"] = "true" }
        if self.websocketCompression { flags["websocket_compression"] = "true" }
        return flags
    }

    static func readConfigFile(_ path: String) throws -> JSONValue {
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read config file \(path)")
        }
        do {
            return try JSONValue(parsing: Array(contents))
        } catch {
            throw ValidationError("config file \(path) is not valid JSON: \(error)")
        }
    }
}

/// SIGHUP: reads the TLS certificate and key again; new connections get them, open ones keep
/// theirs (SPEC §10). A pair that cannot be read leaves the one in use.
struct CertificateReload: Service {
    let certificates: TLSCertificates
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                do {
                    try self.certificates.reload()
                    self.logger.notice("TLS certificate reloaded", metadata: ["flow.tls.cert": .string(self.certificates.certificatePath)])
                } catch {
                    self.logger.error("TLS certificate not reloaded: the one in use stays", metadata: ["flow.error": .string(String(describing: error))])
                }
            }
        }
    }
}
