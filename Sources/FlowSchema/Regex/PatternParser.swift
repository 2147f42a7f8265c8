/// A parsed pattern: what the machine is compiled from.
indirect enum PatternSyntax: Sendable {
    case empty
    case scalar(UInt32)
    case set(ScalarClass)
    case sequence([PatternSyntax])
    case alternatives([PatternSyntax])
    case repetition(PatternSyntax, min: Int, max: Int?)
    case assertion(PatternAssertion)
}

/// The zero-width assertions a pattern may use.
enum PatternAssertion: Sendable {
    case start, end, wordBoundary, notWordBoundary
}

/// Why a pattern cannot be used.
struct PatternError: Error, Sendable {
    let message: String
}

/// Parses the ECMA-262 regular expression dialect JSON Schema uses (SPEC §8), over Unicode
/// scalars as with the `u` flag: alternation, groups (capturing, named, non-capturing), the
/// quantifiers with their lazy forms, classes with ranges, `.`, `^`, `$`, `\b`, `\B`, the class
/// escapes (`\d \w \s` and their complements, `\p{…}`, `\P{…}`) and the character escapes.
///
/// Backreferences and lookaround are refused: they are what makes a pattern need backtracking,
/// and the machine matches in time linear in the text (SPEC §11).
struct PatternParser {
    /// Deepest group nesting accepted (the parser and the compiler recurse per group).
    static let maxNesting = 64
    /// Repetition counts above this are read as this (the compiled size limit refuses them anyway).
    static let maxCount = 100_000

    private let scalars: [Unicode.Scalar]
    private var index = 0

    init(_ source: String) {
        self.scalars = Array(source.unicodeScalars)
    }

    mutating func parse() throws(PatternError) -> PatternSyntax {
        let syntax = try self.disjunction(depth: 0)
        if self.index < self.scalars.count {
            throw PatternError(message: "has an unmatched ')'")
        }
        return syntax
    }

    // MARK: Structure

    private var peek: Unicode.Scalar? { self.index < self.scalars.count ? self.scalars[self.index] : nil }

    private func peek(_ offset: Int) -> Unicode.Scalar? {
        self.index + offset < self.scalars.count ? self.scalars[self.index + offset] : nil
    }

    private mutating func take() -> Unicode.Scalar? {
        guard let scalar = self.peek else { return nil }
        self.index += 1
        return scalar
    }

    private mutating func disjunction(depth: Int) throws(PatternError) -> PatternSyntax {
        guard depth <= Self.maxNesting else { throw PatternError(message: "nests groups deeper than \(Self.maxNesting)") }
        var alternatives = [try self.alternative(depth: depth)]
        while self.peek == "|" {
            self.index += 1
            alternatives.append(try self.alternative(depth: depth))
        }
        return alternatives.count == 1 ? alternatives[0] : .alternatives(alternatives)
    }

    private mutating func alternative(depth: Int) throws(PatternError) -> PatternSyntax {
        var terms: [PatternSyntax] = []
        while let scalar = self.peek, scalar != "|", scalar != ")" {
            terms.append(try self.term(depth: depth))
        }
        switch terms.count {
        case 0: return .empty
        case 1: return terms[0]
        default: return .sequence(terms)
        }
    }

    private mutating func term(depth: Int) throws(PatternError) -> PatternSyntax {
        let atom: PatternSyntax
        switch self.peek {
        case "^":
            self.index += 1
            return try self.refuseQuantifier(.assertion(.start))
        case "$":
            self.index += 1
            return try self.refuseQuantifier(.assertion(.end))
        case "\\" where self.peek(1) == "b":
            self.index += 2
            return try self.refuseQuantifier(.assertion(.wordBoundary))
        case "\\" where self.peek(1) == "B":
            self.index += 2
            return try self.refuseQuantifier(.assertion(.notWordBoundary))
        case "(":
            atom = try self.group(depth: depth)
        case ".":
            self.index += 1
            atom = .set(ScalarClass(ranges: ScalarClass.lineTerminators, negated: true))
        case "[":
            atom = .set(try self.characterClass())
        case "\\":
            self.index += 1
            atom = try self.atomEscape()
        case "*", "+", "?":
            throw PatternError(message: "has a quantifier with nothing to repeat")
        case "{" where self.quantifierAhead():
            throw PatternError(message: "has a quantifier with nothing to repeat")
        default:
            atom = .scalar(self.take()!.value)
        }
        return try self.quantified(atom)
    }

    private mutating func refuseQuantifier(_ assertion: PatternSyntax) throws(PatternError) -> PatternSyntax {
        if let scalar = self.peek, scalar == "*" || scalar == "+" || scalar == "?" || (scalar == "{" && self.quantifierAhead()) {
            throw PatternError(message: "has a quantifier on an assertion")
        }
        return assertion
    }

    private mutating func group(depth: Int) throws(PatternError) -> PatternSyntax {
        self.index += 1
        if self.peek == "?" {
            switch (self.peek(1), self.peek(2)) {
            case (":"?, _):
                self.index += 2
            case ("="?, _), ("!"?, _), ("<"?, "="?), ("<"?, "!"?):
                throw PatternError(message: "uses lookaround, which this validator does not support (it needs backtracking)")
            case ("<"?, _):
                self.index += 2
                while let scalar = self.take(), scalar != ">" {
                    guard scalar == "_" || scalar == "$" || scalar.properties.isIDContinue else {
                        throw PatternError(message: "has an invalid group name")
                    }
                }
            default:
                throw PatternError(message: "has an invalid group '(?'")
            }
        }
        let inner = try self.disjunction(depth: depth + 1)
        guard self.take() == ")" else { throw PatternError(message: "has an unclosed group") }
        return inner
    }

    // MARK: Quantifiers

    /// Whether a `{n}`, `{n,}` or `{n,m}` starts here (otherwise `{` is a literal, as Annex B allows).
    private func quantifierAhead() -> Bool {
        var copy = self
        return copy.braceQuantifier() != nil
    }

    private mutating func braceQuantifier() -> (Int, Int?)? {
        guard self.peek == "{" else { return nil }
        let start = self.index
        self.index += 1
        guard let minimum = self.number() else {
            self.index = start
            return nil
        }
        var maximum: Int? = minimum
        if self.peek == "," {
            self.index += 1
            maximum = self.number()
        }
        guard self.take() == "}" else {
            self.index = start
            return nil
        }
        return (minimum, maximum)
    }

    private mutating func number() -> Int? {
        var value: Int?
        while let scalar = self.peek, let digit = Int(exactly: scalar.value) , (48...57).contains(digit) {
            value = min((value ?? 0) * 10 + digit - 48, Self.maxCount)
            self.index += 1
        }
        return value
    }

    private mutating func quantified(_ atom: PatternSyntax) throws(PatternError) -> PatternSyntax {
        let bounds: (Int, Int?)
        switch self.peek {
        case "*":
            self.index += 1
            bounds = (0, nil)
        case "+":
            self.index += 1
            bounds = (1, nil)
        case "?":
            self.index += 1
            bounds = (0, 1)
        case "{":
            guard let braces = self.braceQuantifier() else { return atom }
            bounds = braces
        default:
            return atom
        }
        if let maximum = bounds.1, maximum < bounds.0 { throw PatternError(message: "has a quantifier whose numbers are out of order") }
        // A lazy quantifier matches the same texts; only which match is found first differs.
        if self.peek == "?" { self.index += 1 }
        return .repetition(atom, min: bounds.0, max: bounds.1)
    }

    // MARK: Escapes

    private mutating func atomEscape() throws(PatternError) -> PatternSyntax {
        guard let scalar = self.peek else { throw PatternError(message: "ends with a lone backslash") }
        if let set = try self.classEscape() { return .set(set) }
        if ("1"..."9").contains(scalar) || scalar == "k" {
            throw PatternError(message: "uses a backreference, which this validator does not support (it needs backtracking)")
        }
        return .scalar(try self.characterEscape())
    }

    /// `\d \D \w \W \s \S \p{…} \P{…}` (the backslash already read); nil for other escapes.
    private mutating func classEscape() throws(PatternError) -> ScalarClass? {
        switch self.peek {
        case "d"?, "D"?, "w"?, "W"?, "s"?, "S"?:
            let letter = self.take()!
            let ranges = switch letter {
            case "d", "D": ScalarClass.digits
            case "w", "W": ScalarClass.wordCharacters
            default: ScalarClass.whiteSpace
            }
            return ScalarClass(ranges: ranges, negated: letter.properties.isUppercase)
        case "p"?, "P"?:
            let negated = self.take() == "P"
            guard self.take() == "{" else { throw PatternError(message: "has a \\p without {…}") }
            var name = ""
            while let scalar = self.take(), scalar != "}" { name.unicodeScalars.append(scalar) }
            guard let property = ScalarProperty(named: name) else {
                throw PatternError(message: "uses the Unicode property '\(name.prefix(40))', which this validator does not support")
            }
            var set = ScalarClass()
            if negated { set.excludedProperties = [property] } else { set.properties = [property] }
            return set
        default:
            return nil
        }
    }

    /// A character escape (the backslash already read): its scalar value.
    private mutating func characterEscape() throws(PatternError) -> UInt32 {
        guard let scalar = self.take() else { throw PatternError(message: "ends with a lone backslash") }
        switch scalar {
        case "f": return 0x0C
        case "n": return 0x0A
        case "r": return 0x0D
        case "t": return 0x09
        case "v": return 0x0B
        case "0":
            if let next = self.peek, ("0"..."9").contains(next) { throw PatternError(message: "uses an octal escape") }
            return 0
        case "c":
            guard let letter = self.take(), letter.isASCII, letter.properties.isAlphabetic else {
                throw PatternError(message: "has a \\c without a control letter")
            }
            return letter.value % 32
        case "x":
            guard let value = self.hex(count: 2) else { throw PatternError(message: "has a \\x without two hex digits") }
            return value
        case "u":
            return try self.unicodeEscape()
        default:
            // Identity escapes: a syntax character, '/', '-', or any other non-alphanumeric character.
            guard !scalar.properties.isAlphabetic, !("0"..."9").contains(scalar) else {
                throw PatternError(message: "has an unknown escape '\\\(scalar)'")
            }
            return scalar.value
        }
    }

    private mutating func unicodeEscape() throws(PatternError) -> UInt32 {
        if self.peek == "{" {
            self.index += 1
            var value: UInt32 = 0
            var digits = 0
            while let scalar = self.peek, scalar != "}" {
                guard let digit = Self.hexValue(scalar), digits < 8 else { throw PatternError(message: "has a bad \\u{…} escape") }
                value = value * 16 + digit
                digits += 1
                self.index += 1
            }
            guard self.take() == "}", digits > 0, value <= ScalarClass.maxScalar else { throw PatternError(message: "has a bad \\u{…} escape") }
            return value
        }
        guard let high = self.hex(count: 4) else { throw PatternError(message: "has a \\u without four hex digits") }
        // A surrogate pair written as two escapes is one scalar.
        if (0xD800...0xDBFF).contains(high), self.peek == "\\", self.peek(1) == "u" {
            let saved = self.index
            self.index += 2
            if let low = self.hex(count: 4), (0xDC00...0xDFFF).contains(low) {
                return 0x10000 + (high - 0xD800) << 10 + (low - 0xDC00)
            }
            self.index = saved
        }
        return high
    }

    private mutating func hex(count: Int) -> UInt32? {
        var value: UInt32 = 0
        for offset in 0..<count {
            guard let scalar = self.peek(offset), let digit = Self.hexValue(scalar) else { return nil }
            value = value * 16 + digit
        }
        self.index += count
        return value
    }

    private static func hexValue(_ scalar: Unicode.Scalar) -> UInt32? {
        switch scalar {
        case "0"..."9": scalar.value - 48
        case "a"..."f": scalar.value - 87
        case "A"..."F": scalar.value - 55
        default: nil
        }
    }

    // MARK: Classes

    private enum ClassAtom {
        case scalar(UInt32)
        case set(ScalarClass)
    }

    private mutating func characterClass() throws(PatternError) -> ScalarClass {
        self.index += 1
        var result = ScalarClass()
        if self.peek == "^" {
            self.index += 1
            result.negated = true
        }
        while true {
            guard let scalar = self.peek else { throw PatternError(message: "has an unclosed character class") }
            if scalar == "]" {
                self.index += 1
                return result.normalized()
            }
            let first = try self.classAtom()
            if self.peek == "-", let after = self.peek(1), after != "]" {
                self.index += 1
                let second = try self.classAtom()
                switch (first, second) {
                case (.scalar(let low), .scalar(let high)):
                    guard low <= high else { throw PatternError(message: "has a class range out of order") }
                    result.ranges.append(low...high)
                default:
                    // Annex B: a range with a class escape at one end is the two ends and '-'.
                    for atom in [first, .scalar(0x2D), second] { Self.add(atom, to: &result) }
                }
            } else {
                Self.add(first, to: &result)
            }
        }
    }

    private static func add(_ atom: ClassAtom, to result: inout ScalarClass) {
        switch atom {
        case .scalar(let value): result.ranges.append(value...value)
        case .set(let set): result.formUnion(set)
        }
    }

    private mutating func classAtom() throws(PatternError) -> ClassAtom {
        guard let scalar = self.take() else { throw PatternError(message: "has an unclosed character class") }
        guard scalar == "\\" else { return .scalar(scalar.value) }
        switch self.peek {
        case "b"?:
            self.index += 1
            return .scalar(0x08)
        case "-"?:
            self.index += 1
            return .scalar(0x2D)
        default:
            if let set = try self.classEscape() { return .set(set) }
            if let next = self.peek, ("1"..."9").contains(next) {
                throw PatternError(message: "uses a backreference, which this validator does not support (it needs backtracking)")
            }
            return .scalar(try self.characterEscape())
        }
    }
}
