public import FlowAuth
public import FlowCore
public import FlowProtocol
import FlowPostgres
import Foundation
public import Logging

/// Every setting of the daemon, with SPEC §10–§11's defaults.
///
/// Each key can come from a flag, the environment or the config file (flags > environment >
/// file); ``GatewayConfiguration/keys`` is the table, and the README lists it for users.
public struct GatewayConfiguration: Sendable, Equatable {
    /// `host` — address to bind.
    public var host = "127.0.0.1"
    /// `port` — TCP port (0 picks a free one).
    public var port = 8080
    /// `data` — data directory (the database lives here).
    public var dataDirectory = "data"
    /// `endpoints` — folder of endpoint definitions.
    public var endpointsDirectory = "Endpoints"
    /// The PostgreSQL database several nodes share (SPEC §12); nil keeps everything in the
    /// SQLite file in ``dataDirectory``. It may carry a password: never log it.
    public var store: String?
    /// Connections one node keeps to ``store`` at most.
    public var storeMaxConnections = 20
    /// `cluster_secret` — shared by the nodes of one store: with it each node offers its
    /// providers to the others, which forward calls to it (SPEC §12). Never logged.
    public var clusterSecret: String?
    /// `node_url` — where the other nodes reach this one (`ws://host:port`); by default
    /// `ws://<host>:<port>` of the address it listens on (the machine's name when that is a
    /// wildcard address).
    public var nodeURL: String?
    /// `schemas` — folder of JSON Schemas.
    public var schemasDirectory = "Schemas"
    /// `max_message_bytes` — largest WebSocket message / HTTP body.
    public var maxMessageBytes = 1 << 20
    /// `max_snapshot_bytes` — largest `application/octet-stream` body (a snapshot to restore).
    public var maxSnapshotBytes = 1 << 32

    /// `<data>/tmp`: uploads and snapshots on their way out; emptied when the daemon starts.
    public static func scratchDirectory(dataDirectory: String) -> String {
        dataDirectory.hasSuffix("/") ? dataDirectory + "tmp" : dataDirectory + "/tmp"
    }
    /// `max_in_flight` — calls with a requestid running at once per socket.
    public var maxInFlightPerSocket = 128
    /// `max_sockets` — open WebSockets.
    public var maxSockets = 10_000
    /// `max_connections` — open TCP connections, HTTP and WebSocket alike; past it a new one is closed at once.
    public var maxConnections = 12_000
    /// `idle_timeout_ms` — how long an HTTP connection may wait for its client between requests or within a body.
    public var idleTimeout: Duration = .seconds(60)
    /// `head_timeout_ms` — how long a request head may take to arrive once it started.
    public var headTimeout: Duration = .seconds(10)
    /// `max_head_bytes` — the largest request head (request line and headers).
    public var maxHeadBytes = 16_384
    /// `max_json_depth` — deepest JSON nesting accepted.
    public var maxJSONDepth = JSONValue.defaultMaxDepth
    /// `call_timeout_ms` — how long a handler may take.
    public var callTimeout: Duration = .seconds(30)
    /// `ping_interval_ms` — how often idle sockets are pinged.
    public var pingInterval: Duration = .seconds(30)
    /// `drain_timeout_ms` — how long shutdown waits for in-flight calls.
    public var drainTimeout: Duration = .seconds(10)
    /// `cors_origins` — browser origins allowed to call the HTTP API (`*` for any).
    public var corsOrigins: [String] = []
    /// `trusted_proxies` — load balancers whose `X-Forwarded-For` names the client.
    public var trustedProxies = TrustedProxies.none
    /// `basic_challenge` — send `WWW-Authenticate: Basic` with every 401, not only to requests
    /// that sent Basic (SPEC §6.4: off, so browsers are never prompted into ambient credentials).
    public var basicChallenge = false
    /// `dashboard` — serve the dashboard at `/dashboard/`.
    public var dashboard = true
    /// `metrics` — record the SPEC §10 series and serve them at `/metrics`; false records nothing.
    public var metrics = true
    /// `otlp_endpoint` — where spans go over OTLP/HTTP (e.g. `http://127.0.0.1:4318/v1/traces`);
    /// unset, nothing is traced (SPEC §10).
    public var otlpEndpoint: String?
    /// `otlp_export_interval_ms` — how long finished spans wait to be sent together.
    public var otlpExportInterval: Duration = .seconds(5)
    /// `otlp_sample_ratio` — the share of calls without a sampled `traceparent` that are traced
    /// (a caller's sampled trace is always continued).
    public var otlpSampleRatio = 1.0
    /// `otel_service_name` — the `service.name` resource attribute of the spans.
    public var otelServiceName = "flowgate"
    /// `tls_cert`, `tls_key` — PEM files: serve `https://` and `wss://` (both or neither).
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// `websocket_compression` — offer permessage-deflate (RFC 7692) to WebSocket clients that ask.
    public var webSocketCompression = false
    /// `diagnostics_echo` — serve the WebSocket echo route `/diagnostics/echo` (conformance tests).
    public var diagnosticsEcho = false
    /// `assert_formats` — make JSON Schema `format` (date-time, uuid, email) a check, not an annotation.
    public var assertFormats = false
    /// `log_level` — trace, debug, info, notice, warning, error, critical.
    public var logLevel: Logger.Level = .info
    /// `admin_password` — the first admin's password, used only when the database has no user
    /// (SPEC §9.1); without it a random one is logged once.
    public var adminPassword: String?
    /// `session_lifetime_ms`, `bcrypt_cost`, `basic_cache_ms`, `login_failures_per_minute`, `max_password_hashes`.
    public var auth = AuthConfiguration()
    /// `provider_grace_ms`, `provider_slot_wait_ms`, `max_providers_per_socket`, `max_schema_bytes`.
    public var providers = ProviderConfiguration()
    /// `max_filter_fields`, `max_search_length`.
    public var list = ListLimits()
    /// `change_log_max_changes`, `change_log_max_age_ms`, `max_watches_per_socket`, `max_queued_events`, `sse_heartbeat_ms`.
    public var watches = WatchConfiguration()

    public init() {}
}

extension GatewayConfiguration {
    /// One configuration key: its name in the config file, its environment variable, its flag.
    public struct Key: Sendable {
        public let name: String
        public let summary: String
        let apply: @Sendable (inout GatewayConfiguration, ConfigValue) throws(ConfigurationError) -> Void

        /// `FLOWGATE_<NAME>`.
        public var environmentVariable: String { "FLOWGATE_" + self.name.uppercased() }
        /// `--<name-with-dashes>`.
        public var flag: String { "--" + self.name.replacingUnderscores() }
    }

    /// A value as it was found: text (flag, environment) or JSON (config file).
    enum ConfigValue {
        case text(String)
        case json(JSONValue)

        func string(_ key: String) throws(ConfigurationError) -> String {
            switch self {
            case .text(let text): return text
            case .json(.string(let text)): return text
            case .json(let other): throw ConfigurationError(key: key, message: "must be a string, not \(other.typeName)")
            }
        }

        func integer(_ key: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
            let value: Int?
            switch self {
            case .text(let text): value = Int(text.trimmingSpaces())
            case .json(.integer(let integer)): value = Int(exactly: integer)
            case .json: value = nil
            }
            guard let value, range.contains(value) else {
                throw ConfigurationError(key: key, message: "must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }

        func number(_ key: String) throws(ConfigurationError) -> Double {
            let value: Double?
            switch self {
            case .text(let text): value = Double(text.trimmingSpaces())
            case .json(.integer(let integer)): value = Double(integer)
            case .json(.number(let number)): value = number
            case .json: value = nil
            }
            guard let value, value.isFinite else { throw ConfigurationError(key: key, message: "must be a number") }
            return value
        }

        func bool(_ key: String) throws(ConfigurationError) -> Bool {
            switch self {
            case .json(.bool(let bool)): return bool
            case .text(let text):
                switch text.lowercased() {
                case "1", "true", "yes", "on", "": return true
                case "0", "false", "no", "off": return false
                default: break
                }
            default: break
            }
            throw ConfigurationError(key: key, message: "must be true or false")
        }

        func list(_ key: String) throws(ConfigurationError) -> [String] {
            switch self {
            case .text(let text):
                return text.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
            case .json(.array(let items)):
                var strings: [String] = []
                for item in items {
                    guard case .string(let string) = item else { throw ConfigurationError(key: key, message: "must be a list of strings") }
                    strings.append(string)
                }
                return strings
            case .json: throw ConfigurationError(key: key, message: "must be a list of strings")
            }
        }
    }

    /// Every key, in the order the README documents them.
    public static let keys: [Key] = [
        Key(name: "host", summary: "address to bind (default 127.0.0.1)") { config, value throws(ConfigurationError) in
            config.host = try value.string("host")
        },
        Key(name: "port", summary: "TCP port; 0 picks a free one (default 8080)") { config, value throws(ConfigurationError) in
            config.port = try value.integer("port", in: 0...65535)
        },
        Key(name: "data", summary: "data directory (default ./data)") { config, value throws(ConfigurationError) in
            config.dataDirectory = try value.string("data")
        },
        Key(name: "store", summary: "PostgreSQL database several nodes share, postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require] (default none: the SQLite file in data)") {
            config, value throws(ConfigurationError) in
            let url = try value.string("store")
            do throws(FlowError) {
                try PostgresStore.check(url)
            } catch {
                throw ConfigurationError(key: "store", message: error.message)
            }
            config.store = url
        },
        Key(name: "store_max_connections", summary: "connections one node keeps to the store at most (default 20)") { config, value throws(ConfigurationError) in
            config.storeMaxConnections = try value.integer("store_max_connections", in: 1...1000)
        },
        Key(name: "cluster_secret", summary: "secret the nodes sharing store hold, at least 16 characters: each node then offers its providers to the others (default none: a provider serves the node it is connected to)") {
            config, value throws(ConfigurationError) in
            let secret = try value.string("cluster_secret")
            guard secret.utf8.count >= 16 else { throw ConfigurationError(key: "cluster_secret", message: "must be at least 16 characters long") }
            config.clusterSecret = secret
        },
        Key(name: "node_url", summary: "where the other nodes reach this one, ws://host:port or wss://host:port (default ws://<host>:<port>, the machine's name for host 0.0.0.0 or ::)") {
            config, value throws(ConfigurationError) in
            var url = try value.string("node_url")
            while url.hasSuffix("/") { url.removeLast() }
            guard url.hasPrefix("ws://") || url.hasPrefix("wss://"), URLComponents(string: url)?.host?.isEmpty == false else {
                throw ConfigurationError(key: "node_url", message: "must be a ws:// or wss:// URL with a host, e.g. ws://10.0.0.5:8080")
            }
            config.nodeURL = url
        },
        Key(name: "endpoints", summary: "endpoint definitions folder (default ./Endpoints)") { config, value throws(ConfigurationError) in
            config.endpointsDirectory = try value.string("endpoints")
        },
        Key(name: "schemas", summary: "JSON Schema folder (default ./Schemas)") { config, value throws(ConfigurationError) in
            config.schemasDirectory = try value.string("schemas")
        },
        Key(name: "max_snapshot_bytes", summary: "largest database snapshot accepted by RUN system/backup restore (default 4294967296)") {
            config, value throws(ConfigurationError) in config.maxSnapshotBytes = try value.integer("max_snapshot_bytes", in: 4096...(1 << 40))
        },
        Key(name: "max_message_bytes", summary: "largest WebSocket message or HTTP body (default 1048576)") { config, value throws(ConfigurationError) in
            config.maxMessageBytes = try value.integer("max_message_bytes", in: 1024...(1 << 30))
        },
        Key(name: "max_in_flight", summary: "calls with a requestid in flight per socket (default 128)") { config, value throws(ConfigurationError) in
            config.maxInFlightPerSocket = try value.integer("max_in_flight", in: 1...100_000)
        },
        Key(name: "max_sockets", summary: "open WebSockets (default 10000)") { config, value throws(ConfigurationError) in
            config.maxSockets = try value.integer("max_sockets", in: 1...10_000_000)
        },
        Key(name: "max_connections", summary: "open TCP connections, HTTP and WebSocket alike; past it a new connection is closed at once (default 12000)") { config, value throws(ConfigurationError) in
            config.maxConnections = try value.integer("max_connections", in: 1...10_000_000)
        },
        Key(name: "idle_timeout_ms", summary: "how long an HTTP connection may wait for its client between requests or within a body before it is closed, in ms (default 60000)") { config, value throws(ConfigurationError) in
            config.idleTimeout = .milliseconds(try value.integer("idle_timeout_ms", in: 100...86_400_000))
        },
        Key(name: "head_timeout_ms", summary: "how long a request head may take to arrive once it started, in ms; later is 408 and a close (default 10000)") { config, value throws(ConfigurationError) in
            config.headTimeout = .milliseconds(try value.integer("head_timeout_ms", in: 100...3_600_000))
        },
        Key(name: "max_head_bytes", summary: "largest request head (request line and headers) in bytes; larger is 431 and a close (default 16384)") { config, value throws(ConfigurationError) in
            config.maxHeadBytes = try value.integer("max_head_bytes", in: 1024...(1 << 20))
        },
        Key(name: "max_json_depth", summary: "deepest JSON nesting (default 64)") { config, value throws(ConfigurationError) in
            config.maxJSONDepth = try value.integer("max_json_depth", in: 1...10_000)
        },
        Key(name: "call_timeout_ms", summary: "handler timeout in ms (default 30000)") { config, value throws(ConfigurationError) in
            config.callTimeout = .milliseconds(try value.integer("call_timeout_ms", in: 1...86_400_000))
        },
        Key(name: "ping_interval_ms", summary: "WebSocket ping interval in ms (default 30000)") { config, value throws(ConfigurationError) in
            config.pingInterval = .milliseconds(try value.integer("ping_interval_ms", in: 100...86_400_000))
        },
        Key(name: "drain_timeout_ms", summary: "shutdown drain deadline in ms (default 10000)") { config, value throws(ConfigurationError) in
            config.drainTimeout = .milliseconds(try value.integer("drain_timeout_ms", in: 0...3_600_000))
        },
        Key(name: "cors_origins", summary: "origins allowed by CORS, comma-separated or a JSON list; * for any (default none)") { config, value throws(ConfigurationError) in
            config.corsOrigins = try value.list("cors_origins")
        },
        Key(name: "trusted_proxies", summary: "addresses or CIDR ranges of load balancers whose X-Forwarded-For names the client, comma-separated or a JSON list (default none: the peer is the client)") {
            config, value throws(ConfigurationError) in
            config.trustedProxies = try TrustedProxies(try value.list("trusted_proxies"))
        },
        Key(name: "basic_challenge", summary: "send WWW-Authenticate: Basic with every 401, not only to requests that sent Basic; makes browsers prompt (default false)") { config, value throws(ConfigurationError) in
            config.basicChallenge = try value.bool("basic_challenge")
        },
        Key(name: "otlp_endpoint", summary: "OTLP/HTTP URL spans are exported to, e.g. http://127.0.0.1:4318/v1/traces (default none: no tracing)") {
            config, value throws(ConfigurationError) in
            let url = try value.string("otlp_endpoint")
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw ConfigurationError(key: "otlp_endpoint", message: "must be an http:// or https:// URL")
            }
            config.otlpEndpoint = url
        },
        Key(name: "otlp_export_interval_ms", summary: "how long finished spans wait to be exported together (default 5000)") {
            config, value throws(ConfigurationError) in config.otlpExportInterval = .milliseconds(try value.integer("otlp_export_interval_ms", in: 10...600_000))
        },
        Key(name: "otlp_sample_ratio", summary: "share of calls traced when the caller sent no sampled traceparent, 0 to 1 (default 1)") {
            config, value throws(ConfigurationError) in
            let ratio = try value.number("otlp_sample_ratio")
            guard (0...1).contains(ratio) else { throw ConfigurationError(key: "otlp_sample_ratio", message: "must be between 0 and 1") }
            config.otlpSampleRatio = ratio
        },
        Key(name: "otel_service_name", summary: "service.name of the exported spans (default flowgate)") { config, value throws(ConfigurationError) in
            config.otelServiceName = try value.string("otel_service_name")
        },
        Key(name: "tls_cert", summary: "PEM certificate chain: serve https:// and wss:// (with tls_key; SIGHUP reloads both)") {
            config, value throws(ConfigurationError) in config.tlsCertificate = try value.string("tls_cert")
        },
        Key(name: "tls_key", summary: "PEM private key of tls_cert") { config, value throws(ConfigurationError) in
            config.tlsKey = try value.string("tls_key")
        },
        Key(name: "metrics", summary: "serve the Prometheus metrics at /metrics, without a credential (default true)") {
            config, value throws(ConfigurationError) in config.metrics = try value.bool("metrics")
        },
        Key(name: "dashboard", summary: "serve the dashboard at /dashboard/ (default true)") { config, value throws(ConfigurationError) in
            config.dashboard = try value.bool("dashboard")
        },
        Key(name: "websocket_compression", summary: "accept permessage-deflate (RFC 7692) from WebSocket clients that offer it (default false)") {
            config, value throws(ConfigurationError) in config.webSocketCompression = try value.bool("websocket_compression")
        },
        Key(name: "diagnostics_echo", summary: "serve the WebSocket echo route /diagnostics/echo (default false)") { config, value throws(ConfigurationError) in
            config.diagnosticsEcho = try value.bool("diagnostics_echo")
        },
        Key(name: "assert_formats", summary: "check JSON Schema format (date-time, uuid, email) instead of treating it as an annotation (default false)") { config, value throws(ConfigurationError) in
            config.assertFormats = try value.bool("assert_formats")
        },
        Key(name: "log_level", summary: "trace, debug, info, notice, warning, error or critical (default info)") { config, value throws(ConfigurationError) in
            let text = try value.string("log_level")
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ConfigurationError(key: "log_level", message: "must be one of trace, debug, info, notice, warning, error, critical")
            }
            config.logLevel = level
        },
        Key(name: "admin_password", summary: "password of the first user, admin, created when the database has no user (default: random, logged once)") { config, value throws(ConfigurationError) in
            config.adminPassword = try value.string("admin_password")
        },
        Key(name: "session_lifetime_ms", summary: "how long a session token from auth/session lives, in ms (default 43200000, 12 h)") { config, value throws(ConfigurationError) in
            config.auth.sessionLifetime = .milliseconds(try value.integer("session_lifetime_ms", in: 1000...31_536_000_000))
        },
        Key(name: "bcrypt_cost", summary: "bcrypt cost of new password hashes (default 12)") { config, value throws(ConfigurationError) in
            config.auth.bcryptCost = try value.integer("bcrypt_cost", in: 4...31)
        },
        Key(name: "basic_cache_ms", summary: "how long a verified HTTP Basic credential is trusted without hashing again, in ms (default 30000)") { config, value throws(ConfigurationError) in
            config.auth.basicCacheLifetime = .milliseconds(try value.integer("basic_cache_ms", in: 0...3_600_000))
        },
        Key(name: "login_failures_per_minute", summary: "failed logins per user name and per client address per minute before RATE_LIMITED (default 10)") { config, value throws(ConfigurationError) in
            config.auth.loginFailuresPerMinute = try value.integer("login_failures_per_minute", in: 1...1_000_000)
        },
        Key(name: "token_max_lifetime_ms", summary: "longest life of a personal access token made over the API, also its default; 0 for no limit (default 31536000000, 365 days)") { config, value throws(ConfigurationError) in
            let milliseconds = try value.integer("token_max_lifetime_ms", in: 0...(100 * 31_536_000_000))
            config.auth.tokenMaxLifetime = milliseconds == 0 ? nil : .milliseconds(milliseconds)
        },
        Key(name: "max_scopes", summary: "scopes one token or role may list; more is VALIDATION_FAILED (default 64)") { config, value throws(ConfigurationError) in
            config.auth.maxScopes = try value.integer("max_scopes", in: 1...10_000)
        },
        Key(name: "max_tokens_per_user", summary: "personal access tokens one user may hold; more is RATE_LIMITED (default 100)") { config, value throws(ConfigurationError) in
            config.auth.maxTokensPerUser = try value.integer("max_tokens_per_user", in: 1...1_000_000)
        },
        Key(name: "max_sessions_per_user", summary: "sessions one user may hold; a sign-in past it ends the oldest (default 100)") { config, value throws(ConfigurationError) in
            config.auth.maxSessionsPerUser = try value.integer("max_sessions_per_user", in: 1...1_000_000)
        },
        Key(name: "max_password_hashes", summary: "password hashes (bcrypt) running at once; a few more wait up to 1 s, the rest get RATE_LIMITED (default: the number of cores, at least 2)") { config, value throws(ConfigurationError) in
            config.auth.maxPasswordHashes = try value.integer("max_password_hashes", in: 1...1024)
        },
        Key(name: "max_providers_per_socket", summary: "provider registrations one WebSocket may hold; more is RATE_LIMITED (default 64)") { config, value throws(ConfigurationError) in
            config.providers.maxRegistrationsPerSocket = try value.integer("max_providers_per_socket", in: 1...100_000)
        },
        Key(name: "max_schema_bytes", summary: "largest JSON Schema a provider may register, in bytes of JSON; larger is VALIDATION_FAILED (default 65536)") { config, value throws(ConfigurationError) in
            config.providers.maxSchemaBytes = try value.integer("max_schema_bytes", in: 2...(1 << 30))
        },
        Key(name: "max_filter_fields", summary: "fields one LIST filter may name; more is INVALID_REQUEST (default 16)") { config, value throws(ConfigurationError) in
            config.list.maxFilterFields = try value.integer("max_filter_fields", in: 1...1000)
        },
        Key(name: "max_search_length", summary: "characters of one LIST search; more is INVALID_REQUEST (default 256)") { config, value throws(ConfigurationError) in
            config.list.maxSearchLength = try value.integer("max_search_length", in: 1...100_000)
        },
        Key(name: "change_log_max_changes", summary: "changes the change log keeps for watches to resume from; older positions are CURSOR_EXPIRED (default 100000)") { config, value throws(ConfigurationError) in
            config.watches.retention.maxChanges = try value.integer("change_log_max_changes", in: 1...1_000_000_000)
        },
        Key(name: "change_log_max_age_ms", summary: "how long the change log keeps a change, in ms (default 604800000, 7 days)") { config, value throws(ConfigurationError) in
            config.watches.retention.maxAge = .milliseconds(try value.integer("change_log_max_age_ms", in: 1000...(100 * 31_536_000_000)))
        },
        Key(name: "max_watches_per_socket", summary: "watches one WebSocket may hold; more is RATE_LIMITED (default 100)") { config, value throws(ConfigurationError) in
            config.watches.maxWatchesPerSocket = try value.integer("max_watches_per_socket", in: 1...100_000)
        },
        Key(name: "max_queued_events", summary: "watch events waiting for one socket or stream; past it the watch ends with an overflow event (default 1000)") { config, value throws(ConfigurationError) in
            config.watches.maxQueuedEvents = try value.integer("max_queued_events", in: 1...10_000_000)
        },
        Key(name: "sse_heartbeat_ms", summary: "how often an idle Server-Sent Events stream gets a comment line, in ms (default 15000)") { config, value throws(ConfigurationError) in
            config.watches.heartbeat = .milliseconds(try value.integer("sse_heartbeat_ms", in: 100...3_600_000))
        },
        Key(name: "provider_grace_ms", summary: "how long a provider namespace stays known after its last provider left, answering PROVIDER_UNAVAILABLE, in ms (default 30000)") { config, value throws(ConfigurationError) in
            config.providers.gracePeriod = .milliseconds(try value.integer("provider_grace_ms", in: 0...86_400_000))
        },
        Key(name: "provider_slot_wait_ms", summary: "how long a call waits for a free slot when every provider is at its concurrency, before RATE_LIMITED, in ms (default 1000)") { config, value throws(ConfigurationError) in
            config.providers.slotWait = .milliseconds(try value.integer("provider_slot_wait_ms", in: 0...60_000))
        },
    ]

    /// Builds the configuration from the three sources, each key taken from the first that has it:
    /// `flags` (key name → text), then `environment` (`FLOWGATE_*`), then `file` (a JSON object).
    public static func load(flags: [String: String], environment: [String: String], file: JSONValue?) throws(ConfigurationError) -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        var fileObject = JSONObject()
        if let file {
            guard case .object(let object) = file else { throw ConfigurationError(key: "config", message: "the config file must hold a JSON object") }
            fileObject = object
            let known = Set(Self.keys.map(\.name))
            if let unknown = object.keys.first(where: { !known.contains($0) }) {
                throw ConfigurationError(key: unknown, message: "is not a configuration key")
            }
        }
        for key in Self.keys {
            if let text = flags[key.name] {
                try key.apply(&configuration, .text(text))
            } else if let text = environment[key.environmentVariable] {
                try key.apply(&configuration, .text(text))
            } else if let json = fileObject[key.name] {
                try key.apply(&configuration, .json(json))
            }
        }
        if configuration.clusterSecret != nil && configuration.store == nil {
            throw ConfigurationError(key: "cluster_secret", message: "needs store: the nodes find one another in the database they share")
        }
        if (configuration.tlsCertificate == nil) != (configuration.tlsKey == nil) {
            throw ConfigurationError(key: configuration.tlsCertificate == nil ? "tls_cert" : "tls_key", message: "is needed too: TLS takes a certificate and its key")
        }
        return configuration
    }
}

/// A configuration value that cannot be used, naming the key.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let key: String
    public let message: String
    public var description: String { "configuration key '\(self.key)' \(self.message)" }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(self.map { $0 == "_" ? "-" : $0 }) }
    fileprivate func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
