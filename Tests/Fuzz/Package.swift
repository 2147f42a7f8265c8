// swift-tools-version: 6.2
// libFuzzer targets for flowgate: one executable per harness of FlowFuzzHarness (the main
// package's). A package of its own, so that the daemon's build never links libFuzzer.
// See README.md here for how to build and run them.

import PackageDescription

let harnesses = ["Envelope", "HTTP", "Schema", "MergePatch", "ListParameters"]

let package = Package(
    name: "flowgate-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "flowgate", path: "../..")],
    targets: [
        .target(name: "CLibFuzzer", path: "Sources/CLibFuzzer"),
        .target(name: "FuzzDriver", dependencies: ["CLibFuzzer"], path: "Sources/FuzzDriver"),
    ]
        + harnesses.map { name in
            .executableTarget(
                name: "Fuzz\(name)",
                dependencies: ["FuzzDriver", .product(name: "FlowFuzzHarness", package: "flowgate")],
                path: "Sources/Fuzz\(name)"
            )
        }
)
