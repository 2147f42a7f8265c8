import FlowProtocol
import FlowSchema
import Testing

/// `pattern` as ECMA-262 reads it (SPEC §8), matched without backtracking (SPEC §11).
@Suite struct PatternTests {
    static func matches(_ pattern: String, _ text: String) throws -> Bool {
        try JSONSchema(["pattern": .string(pattern)]).isValid(.string(text))
    }

    @Test(arguments: [
        // (pattern, text, matches)
        ("a+", "xaay", true), ("a+", "xyz", false), ("^a*$", "", true), ("^a*$", "aab", false),
        ("^[a-c]+$", "abcabc", true), ("^[^0-9]+$", "ab1", false), ("^\\d{3}$", "123", true), ("^\\d$", "٣", false),
        ("^\\w+$", "a_9Z", true), ("^\\w$", "é", false), ("^\\s$", "\u{3000}", true), ("^\\S+$", "a b", false),
        ("^\\D\\W$", "a-", true), ("^[\\d-x]+$", "1-x", true), ("^[\\w.-]+$", "a.b-c", true), ("^[-a]$", "-", true),
        ("^\\u00e9$", "é", true), ("^\\u{1F600}$", "😀", true), ("^\\uD83D\\uDE00$", "😀", true), ("^\\x41$", "A", true),
        ("^a\\nb$", "a\nb", true), ("^\\/\\.$", "/.", true), ("^\\cJ$", "\n", true), ("^[\\b]$", "\u{8}", true),
        ("^\\p{Letter}+$", "éa", true), ("^\\p{L}+$", "a1", false), ("^\\P{L}$", "1", true), ("^\\p{Lu}$", "É", true),
        ("^[\\p{N}x]+$", "4x٣", true), ("^[^\\P{Ll}]$", "a", true), ("^[^\\P{Ll}]$", "A", false), ("^\\p{gc=Nd}$", "7", true),
        ("\\bfoo\\b", "a foo b", true), ("\\bfoo\\b", "afoob", false), ("\\Boo", "foo", true), ("^\\B$", "", true),
        ("^a{2,3}$", "aaaa", false), ("^a{2,3}$", "aaa", true), ("^a{2}$", "aa", true), ("^a{2,}$", "aaaaa", true),
        ("^x{$", "x{", true), ("^a{,5}$", "a{,5}", true), ("^a}$", "a}", true), ("^]$", "]", true),
        ("^(ab|cd)+$", "abcdab", true), ("^(ab|cd)+$", "abc", false), ("^(?:x|y)z$", "yz", true), ("^(?<name>y)$", "y", true),
        ("^a+?$", "aaa", true), ("^a*?b$", "aab", true), ("^.$", "\n", false), ("^.$", "😀", true), ("^[]$", "a", false),
        ("^[^]$", "\n", true), ("a|", "zzz", true), ("^$", "", true), ("^(a*)*$", "aaaa", true), ("^(a|b?)+c$", "abbac", true),
        ("^[z]$", "Z", false), ("é", "café", true), ("^\\$\\^$", "$^", true), ("^[a-]$", "-", true),
    ])
    func matchesAsECMA262Does(pattern: String, text: String, expected: Bool) throws {
        #expect(try Self.matches(pattern, text) == expected, "\(pattern) on \(text.debugDescription)")
    }

    @Test(arguments: [
        "(a)\\1", "\\k<x>(?<x>a)", "(?=a)", "(?!a)", "(?<=a)b", "(?<!a)b", "a**", "*a", "+", "a{2}*", "(unclosed", "a)", "[z-a]",
        "[unclosed", "\\p{Script=Greek}", "\\p{NoSuchProperty}", "\\q", "\\", "^*", "\\b+", "a{3,2}", "\\u12", "\\x4", "(?i)a",
        "\\01", "\\c1", "(?<bad name>a)",
    ])
    func refusesWhatItCannotMatchInLinearTime(pattern: String) {
        #expect(throws: SchemaError.self, "\(pattern)") { try JSONSchema(["pattern": .string(pattern)]) }
    }

    @Test func refusesPatternsThatExpandTooFar() throws {
        do {
            _ = try JSONSchema(["properties": ["a": ["pattern": "(x{1000}){1000}"]]])
            Issue.record("accepted a pattern of a million steps")
        } catch {
            #expect(error.location == "/properties/a/pattern")
            #expect(error.message.contains("too large"))
        }
        let nested = String(repeating: "(", count: 100) + "a" + String(repeating: ")", count: 100)
        #expect(throws: SchemaError.self) { try JSONSchema(["pattern": .string(nested)]) }
        #expect(try Self.matches(String(repeating: "(", count: 60) + "a" + String(repeating: ")", count: 60), "a"))
    }

    /// Patterns that take exponential time on a backtracking engine take a bounded number of
    /// steps here: the whole validation fits a budget linear in the text.
    @Test(arguments: ["^(a+)+$", "^(a|a)*$", "^(a|aa)+$", "^(.*a){12}$", "(x+x+)+y", "^(\\w+\\s?)*$"])
    func catastrophicPatternsCostLinearTime(pattern: String) throws {
        let text = String(repeating: "a", count: 20_000) + "!"
        let schema = try JSONSchema(["pattern": .string(pattern)], workLimit: 200 * text.count)
        let errors = schema.validate(.string(text))
        #expect(errors.count == 1)
        #expect(errors != [JSONSchema.tooComplex], "the match ran out of its linear budget")
    }

    @Test func patternPropertiesAndFormatsUseTheSameMatcher() throws {
        let schema = try JSONSchema(["patternProperties": ["^x-": ["type": "integer"]], "additionalProperties": false])
        #expect(schema.isValid(["x-a": 1]))
        #expect(!schema.isValid(["x-a": "1"]))
        #expect(!schema.isValid(["y": 1]))
        let email = try JSONSchema(["format": "email"], assertFormats: true)
        #expect(email.isValid("a@b.example"))
        // A long near-miss: linear, and answered.
        let valid = email.isValid(.string("a@" + String(repeating: ".", count: 200_000) + " "))
        #expect(!valid)
    }
}
