/// A compiled `pattern` (ECMA-262 dialect, SPEC §8), matched in time linear in the text.
struct Pattern: Sendable {
    let source: String
    private let machine: PatternMachine

    /// Compiles `source`; throws for invalid syntax and for what the linear-time matcher does
    /// not support (backreferences, lookaround, some `\p{…}` properties).
    init(_ source: String) throws(PatternError) {
        var parser = PatternParser(source)
        self.source = source
        self.machine = try PatternMachine(parser.parse())
    }

    /// Whether the pattern matches anywhere in `text` (JSON Schema patterns are not anchored);
    /// nil when `budget` ran out first.
    func matches(_ text: String, budget: inout Int) -> Bool? {
        self.machine.matches(text, budget: &budget)
    }

    /// Whether the pattern matches, for fixed patterns whose cost is known to be small.
    func matches(_ text: String) -> Bool {
        var budget = Int.max
        return self.machine.matches(text, budget: &budget) ?? false
    }
}
