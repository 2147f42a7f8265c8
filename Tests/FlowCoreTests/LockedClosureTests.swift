import Foundation
import Testing

/// No closure is kept bare in a `Locked` or `Mutex` (see `Locked`'s documentation): each
/// `withLock` would wrap it in one more reabstraction thunk, and every call through it would
/// get slower than the last. The change-log receiver had it (CREATE slowed with every write);
/// this holds the sources to the rule, since a timing test could not.
@Suite struct LockedClosureTests {
    @Test func noLockHoldsABareClosure() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        #expect(files.count > 50)
        // `Locked<(@Sendable (A) -> B)?>`, `Mutex<((A) -> B)?>` and the like: a function type as the value.
        let bare = /(Locked|Mutex)<\(*\s*(@Sendable\s*)?\([^<>]*\)\s*(async\s*)?(throws\s*)?->/
        var found: [String] = []
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where !line.trimmingCharacters(in: .whitespaces).hasPrefix("///") && line.contains(bare) {
                found.append("\(file.lastPathComponent):\(number + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(found.isEmpty, "box these closures in a struct: \(found)")
    }

    /// The rule's pattern finds what it is meant to find.
    @Test func thePatternFindsABareClosure() {
        let bare = /(Locked|Mutex)<\(*\s*(@Sendable\s*)?\([^<>]*\)\s*(async\s*)?(throws\s*)?->/
        #expect("let receiver = Locked<(@Sendable (Change) -> Void)?>(nil)".contains(bare))
        #expect("let m = Mutex<((Int) -> Bool)?>(nil)".contains(bare))
        #expect(!"let state = Locked<Receiver?>(nil)".contains(bare))
        #expect(!"let answer = Locked<(Response, Duration)?>(nil)".contains(bare))
    }
}
