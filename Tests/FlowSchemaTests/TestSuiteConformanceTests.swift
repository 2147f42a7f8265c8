import FlowProtocol
import FlowSchema
import Foundation
import Testing

/// Runs the official JSON Schema Test Suite (draft 2020-12, `../shared/conformance`) and prints
/// passed / failed / excluded per file. Excluded, as SPEC §8 allows: `dynamicRef.json`,
/// `refRemote.json`, `vocabulary.json`, and cases whose schema the validator refuses to compile
/// because it references another document (or uses `$dynamicRef`, which it refuses by design).
@Suite struct TestSuiteConformanceTests {
    static let excludedFiles: Set<String> = ["dynamicRef.json", "refRemote.json", "vocabulary.json"]

    static var suiteFolder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/conformance/json-schema-test-suite/draft2020-12")
    }

    struct Tally {
        var passed = 0
        var failed = 0
        var excluded = 0
        var reasons: [String: Int] = [:]
        var failures: [String] = []
    }

    @Test func officialTestSuite() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.suiteFolder.path).filter { $0.hasSuffix(".json") }.sorted()
        try #require(files.count > 40, "the test suite was not found at \(Self.suiteFolder.path)")
        var total = Tally()
        var lines: [String] = []
        for file in files {
            let tally = try Self.run(file)
            total.passed += tally.passed
            total.failed += tally.failed
            total.excluded += tally.excluded
            total.failures += tally.failures
            total.reasons.merge(tally.reasons, uniquingKeysWith: +)
            let why = tally.reasons.isEmpty ? "" : " (" + tally.reasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")"
            lines.append("  \(file.padding(toLength: 28, withPad: " ", startingAt: 0)) \(tally.passed) passed, \(tally.failed) failed, \(tally.excluded) excluded\(why)")
        }
        print("JSON Schema Test Suite (draft2020-12):")
        lines.forEach { print($0) }
        print("  total: \(total.passed) passed, \(total.failed) failed, \(total.excluded) excluded (\(total.reasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))")
        #expect(total.failed == 0, "\(total.failures.prefix(40).joined(separator: "\n"))")
        #expect(total.passed > 1000)
        // Outside the three excluded files, only these reasons may exclude a case.
        #expect(Set(total.reasons.keys).isSubset(of: ["excluded file", "reference another document", "use $dynamicRef"]))
    }

    static func run(_ file: String) throws -> Tally {
        let document = try JSONValue(parsing: Array(try Data(contentsOf: Self.suiteFolder.appendingPathComponent(file))))
        var tally = Tally()
        for group in document.arrayValue ?? [] {
            let cases = group["tests"]?.arrayValue ?? []
            if Self.excludedFiles.contains(file) {
                tally.excluded += cases.count
                tally.reasons["excluded file", default: 0] += cases.count
                continue
            }
            let schema: JSONSchema
            do {
                schema = try JSONSchema(group["schema"] ?? .bool(true))
            } catch where error.kind == .externalReference || error.kind == .unsupportedKeyword {
                tally.excluded += cases.count
                tally.reasons[error.kind == .externalReference ? "reference another document" : "use \(error.keyword)", default: 0] += cases.count
                continue
            } catch {
                tally.failed += cases.count
                tally.failures.append("\(file) · \(group["description"]?.stringValue ?? ""): schema refused: \(error)")
                continue
            }
            for test in cases {
                guard let instance = test["data"], case .bool(let expected)? = test["valid"] else { continue }
                let errors = schema.validate(instance)
                if errors.isEmpty == expected && schema.isValid(instance) == expected {
                    tally.passed += 1
                } else {
                    tally.failed += 1
                    tally.failures.append("\(file) · \(group["description"]?.stringValue ?? "") · \(test["description"]?.stringValue ?? ""): expected \(expected ? "valid" : "invalid"), got \(errors)")
                }
            }
        }
        return tally
    }
}
