import FlowServer
import Foundation
import Testing

/// `docker/compose.cluster.yaml` and its balancer's configuration, held to the repository as the
/// Dockerfile is (no container engine runs here): three gateways from the repository's image,
/// each on the compose file's PostgreSQL with a store URL the daemon accepts, behind a balancer
/// that sends WebSocket upgrades and event streams through to every one of them.
@Suite struct ClusterComposeTests {
    static let docker = LiveGateway.repository.appendingPathComponent("docker")
    static var compose: String { (try? String(contentsOf: docker.appendingPathComponent("compose.cluster.yaml"), encoding: .utf8)) ?? "" }
    static var balancer: String { (try? String(contentsOf: docker.appendingPathComponent("nginx.cluster.conf"), encoding: .utf8)) ?? "" }

    /// The top-level keys under `services:` (two-space indented names).
    static var services: [String] {
        var names: [String] = []
        var inServices = false
        for line in Self.compose.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") && !line.isEmpty { inServices = line.hasPrefix("services:") }
            guard inServices, line.hasPrefix("  "), !line.hasPrefix("   "), line.hasSuffix(":") else { continue }
            names.append(String(line.dropFirst(2).dropLast()))
        }
        return names
    }

    /// The lines of service `name`'s block.
    static func block(_ name: String) -> String {
        let lines = Self.compose.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(of: "  \(name):") else { return "" }
        let rest = lines[(start + 1)...].prefix { $0.isEmpty || $0.hasPrefix("   ") }
        return rest.joined(separator: "\n")
    }

    @Test func threeGatewaysShareThePostgreSQLOfTheFile() throws {
        let services = Self.services
        let gateways = services.filter { $0.hasPrefix("flowgate-") }
        #expect(gateways.count == 3, "\(services)")
        #expect(services.contains("postgres") && services.contains("balancer"))
        #expect(Self.block("postgres").contains("image: postgres:1"), "PostgreSQL from its official image")
        for gateway in gateways {
            #expect(Self.block(gateway).contains("<<: *gateway"), "\(gateway) is a gateway like the others")
            // The others reach it by its hostname (node_url's default for host 0.0.0.0).
            #expect(Self.block(gateway).contains("hostname: \(gateway)"), "\(gateway) has the hostname its peers dial")
        }
        // Provider routing across the nodes: every gateway holds the cluster secret, from the environment.
        let secret = try #require(Self.compose.split(separator: "\n").first { $0.contains("FLOWGATE_CLUSTER_SECRET:") })
        #expect(secret.contains("${FLOWGATE_CLUSTER_SECRET:?"), "the secret is not written in the file: \(secret)")
        // One of them builds the image from the repository's Dockerfile; all run it.
        #expect(gateways.contains { Self.block($0).contains("dockerfile: docker/Dockerfile") })
        #expect(FileManager.default.fileExists(atPath: Self.docker.appendingPathComponent("Dockerfile").path))

        // The store URL names the compose file's database, user and service, and the daemon accepts it.
        let store = try #require(Self.compose.split(separator: "\n").first { $0.contains("FLOWGATE_STORE:") })
        let url = String(store.components(separatedBy: "FLOWGATE_STORE: ").last ?? "").replacingOccurrences(
            of: #"\$\{POSTGRES_PASSWORD[^}]*\}"#, with: "secret", options: .regularExpression
        )
        let postgres = Self.block("postgres")
        let components = try #require(URLComponents(string: url))
        #expect(components.host == "postgres" && components.port == 5432)
        #expect(postgres.contains("POSTGRES_USER: \(components.user ?? "?")"))
        #expect(postgres.contains("POSTGRES_DB: \(components.path.dropFirst())"))
        _ = try GatewayConfiguration.load(flags: ["store": url], environment: [:], file: nil)
        // Nodes wait for the database to answer before they start.
        #expect(Self.compose.contains("condition: service_healthy") && postgres.contains("pg_isready"))
    }

    @Test func theBalancerReachesEveryGatewayAndPassesSocketsThrough() throws {
        let gateways = Self.services.filter { $0.hasPrefix("flowgate-") }
        let port = GatewayConfiguration().port
        let upstream = try #require(Self.balancer.components(separatedBy: "upstream flowgate {").last?.components(separatedBy: "}").first)
        for gateway in gateways {
            #expect(upstream.contains("server \(gateway):\(port)"), "the balancer sends to \(gateway)")
        }
        #expect(Self.block("balancer").contains("./nginx.cluster.conf:/etc/nginx/conf.d/default.conf"))
        // WebSocket upgrades: HTTP/1.1 and the Upgrade and Connection headers passed on.
        #expect(Self.balancer.contains("proxy_http_version 1.1;"))
        #expect(Self.balancer.contains("proxy_set_header Upgrade $http_upgrade;"))
        #expect(Self.balancer.contains("proxy_set_header Connection $connection_upgrade;"))
        // Event streams are not buffered, and neither they nor sockets are cut before the gateway's
        // heartbeats and pings (15 s, 30 s) could keep them open.
        #expect(Self.balancer.contains("proxy_buffering off;"))
        let timeout = try #require(Self.balancer.range(of: #"proxy_read_timeout (\d+)([smh]);"#, options: .regularExpression).map { String(Self.balancer[$0]) })
        #expect(!timeout.hasSuffix("s;") || (Int(timeout.filter(\.isNumber)) ?? 0) > 30, "\(timeout)")
        // Never a retry of a write on another node (nginx retries only idempotent methods unless told).
        #expect(!Self.balancer.contains("non_idempotent"))
        // The gateways believe the balancer's X-Forwarded-For, and only the balancer's.
        #expect(Self.balancer.contains("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"))
        let trusted = try #require(Self.compose.split(separator: "\n").first { $0.contains("FLOWGATE_TRUSTED_PROXIES:") }?.split(separator: " ").last)
        #expect(Self.block("balancer").contains("ipv4_address: \(trusted)"))
        _ = try GatewayConfiguration.load(flags: ["trusted_proxies": String(trusted)], environment: [:], file: nil)
    }
}
