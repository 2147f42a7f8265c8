import FlowProtocol
import Foundation
import Testing

@testable import FlowServer

@Suite struct ConfigurationTests {
    @Test func defaultsMatchTheSpec() {
        let configuration = GatewayConfiguration()
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.dataDirectory == "data")
        #expect(configuration.endpointsDirectory == "Endpoints")
        #expect(configuration.schemasDirectory == "Schemas")
        #expect(configuration.maxMessageBytes == 1_048_576)
        #expect(configuration.maxInFlightPerSocket == 128)
        #expect(configuration.maxSockets == 10_000)
        #expect(configuration.maxJSONDepth == 64)
        #expect(configuration.callTimeout == .seconds(30))
        #expect(configuration.pingInterval == .seconds(30))
        #expect(!configuration.diagnosticsEcho)
    }

    /// The reference (the DocC catalog's Configuration and Limits articles) names every key there is.
    @Test func theDocumentationListsEveryKey() throws {
        let catalog = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/FlowServer/Documentation.docc")
        let text = try ["Configuration.md", "Limits.md"].map { try String(contentsOf: catalog.appendingPathComponent($0), encoding: .utf8) }.joined()
        let missing = GatewayConfiguration.keys.map(\.name).filter { !text.contains("| `\($0)` |") }
        #expect(missing.isEmpty, "not documented: \(missing)")
    }

    @Test func tlsNeedsBothFilesAndTracingAnHTTPURL() throws {
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: ["tls_cert": "/a.pem"], environment: [:], file: nil) }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: ["tls_key": "/a.pem"], environment: [:], file: nil) }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: ["otlp_endpoint": "127.0.0.1:4318"], environment: [:], file: nil) }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: ["otlp_sample_ratio": "1.5"], environment: [:], file: nil) }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: ["otlp_sample_ratio": "half"], environment: [:], file: nil) }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: [:], environment: [:], file: ["otlp_sample_ratio": "0.5"]) }
        #expect(try GatewayConfiguration.load(flags: [:], environment: [:], file: ["otlp_sample_ratio": 0.25]).otlpSampleRatio == 0.25)
        let both = try? GatewayConfiguration.load(flags: ["tls_cert": "/a.pem", "tls_key": "/b.pem", "otlp_endpoint": "http://127.0.0.1:4318/v1/traces"], environment: [:], file: nil)
        #expect(both?.tlsKey == "/b.pem" && both?.otlpEndpoint == "http://127.0.0.1:4318/v1/traces")
    }

    @Test func flagsWinOverEnvironmentWhichWinsOverTheFile() throws {
        let file: JSONValue = ["host": "0.0.0.0", "port": 9000, "data": "/file/data", "cors_origins": ["https://a.example"], "diagnostics_echo": true]
        let configuration = try GatewayConfiguration.load(
            flags: ["port": "9002"],
            environment: ["FLOWGATE_PORT": "9001", "FLOWGATE_DATA": "/env/data", "FLOWGATE_CALL_TIMEOUT_MS": "1500", "OTHER": "x"],
            file: file
        )
        #expect(configuration.port == 9002)
        #expect(configuration.dataDirectory == "/env/data")
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.corsOrigins == ["https://a.example"])
        #expect(configuration.diagnosticsEcho)
        #expect(configuration.callTimeout == .milliseconds(1500))
        let fromEnvironment = try GatewayConfiguration.load(flags: [:], environment: ["FLOWGATE_CORS_ORIGINS": "https://a.example, https://b.example"], file: nil)
        #expect(fromEnvironment.corsOrigins == ["https://a.example", "https://b.example"])
    }

    @Test func badValuesNameTheKey() {
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: ["port": "http"], environment: [:], file: nil) }
        do {
            _ = try GatewayConfiguration.load(flags: [:], environment: ["FLOWGATE_MAX_IN_FLIGHT": "0"], file: nil)
            Issue.record("accepted 0")
        } catch {
            #expect(error.key == "max_in_flight")
        }
        do {
            _ = try GatewayConfiguration.load(flags: [:], environment: [:], file: ["prot": 1])
            Issue.record("accepted an unknown key")
        } catch {
            #expect(error.description == "configuration key 'prot' is not a configuration key")
        }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: [:], environment: [:], file: ["port": "8080"]) }
        // A store URL that is not one names the key and never repeats the URL (it may hold a password).
        for store in ["mysql://u:secret@host/db", "postgres://host/db", "postgres://u:secret@host/db?sslmode=sometimes"] {
            do {
                _ = try GatewayConfiguration.load(flags: ["store": store], environment: [:], file: nil)
                Issue.record("accepted \(store)")
            } catch {
                #expect(error.key == "store" && !error.description.contains("secret"), "\(error)")
            }
        }
        // A cluster needs a shared store, a secret worth the name, and a URL the others can reach;
        // the secret is never repeated.
        let store = "postgres://u@127.0.0.1/db"
        let clusterCases: [([String: String], String)] = [
            (["FLOWGATE_CLUSTER_SECRET": "long-enough-secret-value"], "cluster_secret"),
            (["FLOWGATE_STORE": store, "FLOWGATE_CLUSTER_SECRET": "short-secret"], "cluster_secret"),
            (["FLOWGATE_STORE": store, "FLOWGATE_CLUSTER_SECRET": "long-enough-secret-value", "FLOWGATE_NODE_URL": "http://10.0.0.5:8080"], "node_url"),
        ]
        for (environment, key) in clusterCases {
            do {
                _ = try GatewayConfiguration.load(flags: [:], environment: environment, file: nil)
                Issue.record("accepted \(environment)")
            } catch {
                #expect(error.key == key && !error.description.contains("secret-value") && !error.description.contains("short-secret"), "\(error)")
            }
        }
        let node = try? GatewayConfiguration.load(
            flags: [:], environment: ["FLOWGATE_STORE": store, "FLOWGATE_CLUSTER_SECRET": "long-enough-secret-value", "FLOWGATE_HOST": "0.0.0.0", "FLOWGATE_NODE_URL": "ws://gateway1:8080/"],
            file: nil
        )
        #expect(node?.nodeURL == "ws://gateway1:8080")
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: [:], environment: [:], file: ["log_level": "loud"]) }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(flags: [:], environment: [:], file: [1, 2]) }
    }

    @Test func everyKeyHasAnEnvironmentTwinAndAFlagName() {
        let names = GatewayConfiguration.keys.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(GatewayConfiguration.keys.first { $0.name == "max_message_bytes" }?.environmentVariable == "FLOWGATE_MAX_MESSAGE_BYTES")
        #expect(GatewayConfiguration.keys.first { $0.name == "max_message_bytes" }?.flag == "--max-message-bytes")
    }
}
