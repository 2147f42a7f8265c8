// swift-tools-version: 6.2
// flowgate's micro-benchmarks (ordo-one/benchmark): the hot path's pieces, time and
// allocations per call. A package of its own so the daemon's build and tests do not carry the
// benchmark framework. Run from the repository root:
//
//     swift package --package-path Benchmarks benchmark
//
// See Benchmarks/README.md.

import PackageDescription

let package = Package(
    name: "flowgate-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "flowgate", path: ".."),
        // Exactly this trait: the default ones pull a package that is not on the local mirrors.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // The daemon's metrics backend, for "dispatch ... metrics on" (FlowServer itself would bring all of Hummingbird).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .executableTarget(
            name: "HotPath",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "FlowProtocol", package: "flowgate"),
                .product(name: "FlowCore", package: "flowgate"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "HotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
