import Dispatch
import FlowFuzzHarness
import Foundation
import Testing

/// Every input the fuzzers keep (`Tests/Fuzz/Corpus`) and every crasher they ever found
/// (`Tests/Fuzz/Crashers`) goes through its harness again, so what was fixed stays fixed. A
/// harness traps on a broken promise, which would stop this test run: that is the failure.
@Suite struct FuzzRegressionTests {
    static var fuzzFolder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz")
    }

    static func inputs(_ kind: String, _ harness: String) -> [URL] {
        let folder = Self.fuzzFolder.appendingPathComponent(kind).appendingPathComponent(harness)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { folder.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzHarness.all.keys.sorted())
    func keptInputsAndCrashersPass(harness: String) async throws {
        let run = try #require(FuzzHarness.all[harness])
        let inputs = try (Self.inputs("Corpus", harness) + Self.inputs("Crashers", harness)).map { Array(try Data(contentsOf: $0)) }
        #expect(!Self.inputs("Corpus", harness).isEmpty, "no corpus for \(harness)")
        // On a thread of its own, as under libFuzzer: a harness may wait for async work, which
        // must not hold a thread of the cooperative pool while it does.
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                for input in inputs { run(input) }
                continuation.resume()
            }
        }
    }
}
