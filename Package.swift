// swift-tools-version: 6.2
// flowgate — a WebSocket RPC gateway daemon. See README.md.

import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "flowgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flowgate", targets: ["flowgate"]),
        .library(name: "FlowProtocol", targets: ["FlowProtocol"]),
        .library(name: "FlowCore", targets: ["FlowCore"]),
        .library(name: "FlowSchema", targets: ["FlowSchema"]),
        .library(name: "FlowStore", targets: ["FlowStore"]),
        .library(name: "FlowAuth", targets: ["FlowAuth"]),
        .library(name: "FlowServer", targets: ["FlowServer"]),
        .library(name: "FlowClient", targets: ["FlowClient"]),
        .executable(name: "flowgate-example-provider", targets: ["flowgate-example-provider"]),
        // What the libFuzzer targets in Tests/Fuzz (a package of their own) run; see Tests/Fuzz/README.md.
        .library(name: "FlowFuzzHarness", targets: ["FlowFuzzHarness"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
        // permessage-deflate's zlib binding (through HummingbirdWSCompression); named for its errors.
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The shared store of several nodes (SPEC §12), in FlowPostgres only.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // OTLP over HTTP only: the gRPC exporter would bring grpc-swift into every build.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        // `swift package generate-documentation --target FlowServer` builds the DocC catalog (the reference).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // Wire protocol: envelope, response, error codes, JSON value and codec. No I/O.
        .target(
            name: "FlowProtocol",
            dependencies: [
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // JSON Schema draft 2020-12 validator. Pure.
        .target(
            name: "FlowSchema",
            dependencies: ["FlowProtocol", "FlowCore"],
            swiftSettings: swiftSettings
        ),
        // The embedded SQLite store (GRDB): the only target importing GRDB.
        .target(
            name: "FlowStore",
            dependencies: [
                "FlowProtocol",
                "FlowCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL store of several nodes (SPEC §12): the only target importing PostgresNIO.
        .target(
            name: "FlowPostgres",
            dependencies: [
                "FlowProtocol",
                "FlowCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // The TLS context of the one connection that listens outside the pool.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Endpoint protocol, registry, dispatcher, identity and the auth seams. No I/O.
        .target(
            name: "FlowCore",
            dependencies: [
                "FlowProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // Users, tokens, roles and scopes (SPEC §9): the authenticator, the policy, the auth/* endpoints.
        .target(
            name: "FlowAuth",
            dependencies: [
                "FlowProtocol",
                "FlowCore",
                "FlowSchema",
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // HTTP and WebSocket transports and the application builder: the only target importing Hummingbird/NIO.
        .target(
            name: "FlowServer",
            dependencies: [
                "FlowProtocol",
                "FlowCore",
                "FlowSchema",
                "FlowStore",
                "FlowPostgres",
                "FlowAuth",
                // A node's links to the other nodes of a cluster are provider clients (SPEC §12).
                "FlowClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSCompression", package: "hummingbird-websocket"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The browser client (/client/) and the dashboard (/dashboard/), shipped inside the build as a resource bundle.
            resources: [.copy("Resources/client"), .copy("Resources/dashboard")],
            swiftSettings: swiftSettings
        ),
        // The Swift client for subsystems: call endpoints, provide endpoints over one WebSocket (SPEC §5.4).
        .target(
            name: "FlowClient",
            dependencies: [
                "FlowProtocol",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "WSCore", package: "swift-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The example provider the README uses: serves scheduler/queue through FlowClient.
        .executableTarget(
            name: "flowgate-example-provider",
            dependencies: [
                "FlowClient",
                "FlowProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "flowgate",
            dependencies: [
                "FlowServer",
                "FlowCore",
                "FlowAuth",
                "FlowStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Test doubles (endpoints, authenticator, policy) shared by the test targets.
        .target(
            name: "FlowTestSupport",
            dependencies: ["FlowCore", "FlowProtocol", .product(name: "Logging", package: "swift-log")],
            path: "Tests/FlowTestSupport",
            swiftSettings: swiftSettings
        ),
        // Both stores for the tests that run on each (StoreKind), and the test PostgreSQL's
        // databases; apart from FlowTestSupport so the fuzz harnesses do not build PostgresNIO.
        .target(
            name: "FlowStoreTestSupport",
            dependencies: [
                "FlowCore", "FlowProtocol", "FlowStore", "FlowPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/FlowStoreTestSupport",
            swiftSettings: swiftSettings
        ),
        // The fuzz harnesses: shared by the libFuzzer targets (Tests/Fuzz) and the regression test
        // that replays their corpora and crashers.
        .target(
            name: "FlowFuzzHarness",
            dependencies: [
                "FlowProtocol", "FlowCore", "FlowSchema", "FlowServer", "FlowStore", "FlowTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/FlowFuzzHarness",
            swiftSettings: swiftSettings
        ),
        // The raw-stack baseline of flowgate-bench (Benchmarks/README.md): Hummingbird with no gateway logic.
        .executableTarget(
            name: "flowgate-raw",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/RawServer"
        ),
        .testTarget(
            name: "FlowProtocolTests",
            dependencies: ["FlowProtocol"],
            resources: [.copy("Golden")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowSchemaTests",
            dependencies: ["FlowSchema", "FlowProtocol"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowStoreTests",
            dependencies: [
                "FlowStore", "FlowCore", "FlowProtocol", "FlowSchema", "FlowTestSupport", "FlowStoreTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowPostgresTests",
            dependencies: [
                "FlowPostgres", "FlowCore", "FlowProtocol", "FlowTestSupport", "FlowStoreTestSupport", .product(name: "PostgresNIO", package: "postgres-nio"),
                // The SQLite store, whose LIST semantics the PostgreSQL store's are checked against.
                "FlowStore",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowAuthTests",
            dependencies: [
                "FlowAuth", "FlowCore", "FlowProtocol", "FlowStore", "FlowTestSupport", "FlowStoreTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowCoreTests",
            dependencies: ["FlowCore", "FlowProtocol", "FlowTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowServerTests",
            dependencies: [
                "FlowServer", "FlowCore", "FlowProtocol", "FlowTestSupport", "FlowStoreTestSupport", "FlowAuth", "FlowStore", "FlowClient", "FlowFuzzHarness",
                // Opens snapshots the way an operator's tools would (BackupTests).
                .product(name: "GRDB", package: "GRDB.swift"),
                // HTTPS and WSS clients that trust only the test's certificate (TLSTests).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "WSCore", package: "swift-websocket"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The schemathesis hooks the conformance test passes to the tool (Python, read at run time).
            exclude: ["Conformance"],
            swiftSettings: swiftSettings
        ),
    ]
)
