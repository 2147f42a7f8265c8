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
    @Option(help: "Endpoint definitions folder (default ./Endpoints).") var endpoints: String?
    @Option(help: "JSON Schema folder (default ./Schemas).") var schemas: String?
    @Option(help: "JSON config file.") var config: String?
    @Option(help: "Largest WebSocket message or HTTP body in bytes (default 1048576).") var maxMessageBytes: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).") var logLevel: String?
    @Flag(help: "Serve the WebSocket echo route /diagnostics/echo (conformance tests).") var diagnosticsEcho = false

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
        let group = ServiceGroup(
            configuration: .init(services: gateway.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
        logger.notice("flowgate stopped")
    }

    private func flags() -> [String: String] {
        var flags: [String: String] = [:]
        flags["host"] = self.host
        flags["port"] = self.port
        flags["data"] = self.data
        flags["endpoints"] = self.endpoints
        flags["schemas"] = self.schemas
        flags["max_message_bytes"] = self.maxMessageBytes
        flags["log_level"] = self.logLevel
        if self.diagnosticsEcho { flags["diagnostics_echo"] = "true" }
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
