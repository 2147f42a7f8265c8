import FlowServer
import Foundation
import Testing

/// No container engine runs on these machines, so the Dockerfile is held to the repository
/// instead: what it copies exists, it builds from the pinned dependencies, it runs the product
/// the package builds with the daemon's defaults, and its runtime stage has every shared
/// library the binary links.
@Suite struct DockerfileTests {
    static let root = LiveGateway.repository
    static var dockerfile: String { (try? String(contentsOf: root.appendingPathComponent("docker/Dockerfile"), encoding: .utf8)) ?? "" }

    /// The instructions, continuation lines joined, comments dropped.
    static var instructions: [(String, String)] {
        var lines: [String] = []
        var current = ""
        for line in dockerfile.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if current.isEmpty && (line.hasPrefix("#") || line.trimmingCharacters(in: .whitespaces).isEmpty) { continue }
            if line.hasSuffix("\\") {
                current += line.dropLast() + " "
            } else {
                lines.append(current + line)
                current = ""
            }
        }
        return lines.map { line in
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            return (parts[0].uppercased(), parts.count > 1 ? parts[1] : "")
        }
    }

    @Test func everythingItCopiesFromTheRepositoryExists() throws {
        let copies = Self.instructions.filter { $0.0 == "COPY" && !$0.1.hasPrefix("--from") }
        #expect(copies.count >= 4)
        for (_, arguments) in copies {
            let sources = arguments.split(separator: " ").dropLast()
            for source in sources {
                #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(String(source)).path), "COPY \(source)")
            }
        }
        #expect(copies.contains { $0.1.contains("Package.resolved") }, "the image builds from the pinned dependencies")
        #expect(Self.dockerfile.contains("--force-resolved-versions"))
        let ignored = try String(contentsOf: Self.root.appendingPathComponent(".gitignore"), encoding: .utf8)
        #expect(!ignored.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "Package.resolved" })
    }

    @Test func itRunsTheBuiltProductWithTheDaemonsDefaults() throws {
        let instructions = Self.instructions
        let package = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(package.contains(#".executable(name: "flowgate""#))
        #expect(instructions.contains { $0.0 == "ENTRYPOINT" && $0.1 == #"["flowgate"]"# })
        #expect(instructions.contains { $0.0 == "RUN" && $0.1.contains("--product flowgate") && $0.1.contains("flowgate_FlowServer.resources") },
                "the build copies the binary and its resource bundle")
        let defaults = GatewayConfiguration()
        let environment = instructions.filter { $0.0 == "ENV" }.map(\.1).joined(separator: " ")
        #expect(environment.contains("FLOWGATE_PORT=\(defaults.port)"))
        #expect(instructions.contains { $0.0 == "EXPOSE" && $0.1 == "\(defaults.port)" })
        let health = try #require(instructions.first { $0.0 == "HEALTHCHECK" }?.1)
        #expect(health.contains("/dev/tcp/127.0.0.1/\(defaults.port)") && health.contains("GET /healthz"))
        // The data volume is the directory the daemon is told to keep its data in.
        let volume = try #require(instructions.first { $0.0 == "VOLUME" }?.1)
        let data = try #require(environment.split(separator: " ").first { $0.hasPrefix("FLOWGATE_DATA=") }?.dropFirst("FLOWGATE_DATA=".count))
        #expect(volume == #"["\#(data)"]"#)
    }

    /// The Swift runtime is linked statically (`--static-swift-stdlib`); every other library the
    /// binary needs comes from the runtime image: its base (ubuntu:24.04 has libc6, libgcc-s1,
    /// libstdc++6 and zlib1g) or the packages its stage installs. The debug binary `swift test`
    /// built links the same system libraries as the release one.
    @Test func theRuntimeImageHasEveryLibraryTheBinaryLinks() async throws {
        let release = Self.root.appendingPathComponent(".build/release/flowgate")
        let binary = FileManager.default.fileExists(atPath: release.path) ? release : try DaemonProcess.binary()
        let (status, output) = try await DaemonProcess.runTool(URL(fileURLWithPath: "/usr/bin/ldd"), [binary.path])
        #expect(status == 0)
        let packages: [String: String] = [
            "libc.so.6": "libc6", "libm.so.6": "libc6", "ld-linux-x86-64.so.2": "libc6", "linux-vdso.so.1": "libc6",
            "libgcc_s.so.1": "libgcc-s1", "libstdc++.so.6": "libstdc++6", "libz.so.1": "zlib1g", "libsqlite3.so.0": "libsqlite3-0",
        ]
        let base: Set = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g"]
        let runtime = try #require(Self.dockerfile.components(separatedBy: "FROM ubuntu").last)
        let installed = runtime.components(separatedBy: "apt-get install").dropFirst().flatMap { $0.components(separatedBy: "&&")[0].split(separator: " ").map(String.init) }
        for line in output.split(separator: "\n") {
            let soname = String(line.trimmingCharacters(in: .whitespaces).split(separator: " ")[0]).components(separatedBy: "/").last ?? ""
            // The Swift runtime and Foundation: static in the image.
            if line.contains("/opt/swift") || line.contains("/usr/lib/swift") || soname.hasPrefix("libswift") || soname.hasPrefix("libFoundation")
                || soname.hasPrefix("lib_Foundation") || soname == "libdispatch.so" || soname == "libBlocksRuntime.so"
            {
                continue
            }
            let package = try #require(packages[soname], "the binary links \(soname): say which package of the runtime image has it")
            #expect(base.contains(package) || installed.contains(package), "\(soname) needs \(package) in the runtime stage")
        }
    }
}
