/// A set of Unicode scalars, as a character class of an ECMA-262 pattern describes it: sorted
/// ranges, plus Unicode properties (`\p{…}`) and their complements (`\P{…}`), maybe negated.
struct ScalarClass: Sendable {
    /// Sorted, non-overlapping, non-adjacent after ``normalized()``.
    var ranges: [ClosedRange<UInt32>] = []
    var properties: [ScalarProperty] = []
    var excludedProperties: [ScalarProperty] = []
    var negated = false

    static let maxScalar: UInt32 = 0x10FFFF

    init(ranges: [ClosedRange<UInt32>] = [], negated: Bool = false) {
        self.ranges = ranges
        self.negated = negated
    }

    /// Whether the class matches `value`.
    func contains(_ value: UInt32) -> Bool {
        var found = self.rangesContain(value)
        if !found, !self.properties.isEmpty || !self.excludedProperties.isEmpty, let scalar = Unicode.Scalar(value) {
            found = self.properties.contains { $0.matches(scalar) } || self.excludedProperties.contains { !$0.matches(scalar) }
        }
        return found != self.negated
    }

    private func rangesContain(_ value: UInt32) -> Bool {
        var low = 0
        var high = self.ranges.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let range = self.ranges[middle]
            if value < range.lowerBound {
                high = middle - 1
            } else if value > range.upperBound {
                low = middle + 1
            } else {
                return true
            }
        }
        return false
    }

    /// Adds every member of `other` (which must not be negated as a whole unless it is only ranges).
    mutating func formUnion(_ other: ScalarClass) {
        if other.negated {
            self.ranges += Self.complement(other.ranges)
        } else {
            self.ranges += other.ranges
        }
        self.properties += other.properties
        self.excludedProperties += other.excludedProperties
    }

    /// The ranges sorted and merged, for the binary search.
    func normalized() -> ScalarClass {
        var copy = self
        copy.ranges = Self.merge(self.ranges)
        return copy
    }

    static func merge(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var merged: [ClosedRange<UInt32>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, range.lowerBound <= last.upperBound &+ 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    /// Every scalar value not in `ranges`.
    static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var result: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for range in Self.merge(ranges) {
            if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
            if range.upperBound >= Self.maxScalar { return result }
            next = range.upperBound + 1
        }
        result.append(next...Self.maxScalar)
        return result
    }

    // MARK: The classes of ECMA-262

    static let digits: [ClosedRange<UInt32>] = [0x30...0x39]
    static let wordCharacters: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    /// WhiteSpace and LineTerminator of ECMA-262.
    static let whiteSpace: [ClosedRange<UInt32>] = [
        0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029, 0x202F...0x202F,
        0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF,
    ]
    /// What `.` does not match: the line terminators.
    static let lineTerminators: [ClosedRange<UInt32>] = [0x0A...0x0A, 0x0D...0x0D, 0x2028...0x2029]

    static func isWordCharacter(_ value: UInt32) -> Bool {
        (0x30...0x39).contains(value) || (0x41...0x5A).contains(value) || value == 0x5F || (0x61...0x7A).contains(value)
    }
}

/// A Unicode property of `\p{…}`: a set of general categories, or a binary property.
enum ScalarProperty: Sendable {
    case categories(Set<Unicode.GeneralCategory>)
    case alphabetic, whiteSpace, uppercase, lowercase, ascii, any, assigned, idStart, idContinue

    func matches(_ scalar: Unicode.Scalar) -> Bool {
        switch self {
        case .categories(let categories): categories.contains(scalar.properties.generalCategory)
        case .alphabetic: scalar.properties.isAlphabetic
        case .whiteSpace: scalar.properties.isWhitespace
        case .uppercase: scalar.properties.isUppercase
        case .lowercase: scalar.properties.isLowercase
        case .ascii: scalar.isASCII
        case .any: true
        case .assigned: scalar.properties.generalCategory != .unassigned
        case .idStart: scalar.properties.isIDStart
        case .idContinue: scalar.properties.isIDContinue
        }
    }

    /// The property a `\p{…}` body names (`L`, `Letter`, `gc=Lu`, `General_Category=Lu`,
    /// `Alphabetic`, …); nil for what is not supported (scripts among them).
    init?(named body: String) {
        var name = Substring(body)
        if let equals = name.firstIndex(of: "=") {
            guard ["gc", "General_Category"].contains(String(name[..<equals])) else { return nil }
            name = name[name.index(after: equals)...]
            guard let categories = Self.generalCategories[String(name)] else { return nil }
            self = .categories(categories)
            return
        }
        if let categories = Self.generalCategories[String(name)] {
            self = .categories(categories)
            return
        }
        switch name {
        case "Alphabetic", "Alpha": self = .alphabetic
        case "White_Space", "space": self = .whiteSpace
        case "Uppercase", "Upper": self = .uppercase
        case "Lowercase", "Lower": self = .lowercase
        case "ASCII": self = .ascii
        case "Any": self = .any
        case "Assigned": self = .assigned
        case "ID_Start", "IDS": self = .idStart
        case "ID_Continue", "IDC": self = .idContinue
        default: return nil
        }
    }

    private static let generalCategories: [String: Set<Unicode.GeneralCategory>] = {
        let groups: [([String], [Unicode.GeneralCategory])] = [
            (["L", "Letter"], [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter]),
            (["LC", "Cased_Letter"], [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter]),
            (["Lu", "Uppercase_Letter"], [.uppercaseLetter]),
            (["Ll", "Lowercase_Letter"], [.lowercaseLetter]),
            (["Lt", "Titlecase_Letter"], [.titlecaseLetter]),
            (["Lm", "Modifier_Letter"], [.modifierLetter]),
            (["Lo", "Other_Letter"], [.otherLetter]),
            (["M", "Mark", "Combining_Mark"], [.nonspacingMark, .spacingMark, .enclosingMark]),
            (["Mn", "Nonspacing_Mark"], [.nonspacingMark]),
            (["Mc", "Spacing_Mark"], [.spacingMark]),
            (["Me", "Enclosing_Mark"], [.enclosingMark]),
            (["N", "Number"], [.decimalNumber, .letterNumber, .otherNumber]),
            (["Nd", "Decimal_Number", "digit"], [.decimalNumber]),
            (["Nl", "Letter_Number"], [.letterNumber]),
            (["No", "Other_Number"], [.otherNumber]),
            (
                ["P", "Punctuation", "punct"],
                [.connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation, .otherPunctuation]
            ),
            (["Pc", "Connector_Punctuation"], [.connectorPunctuation]),
            (["Pd", "Dash_Punctuation"], [.dashPunctuation]),
            (["Ps", "Open_Punctuation"], [.openPunctuation]),
            (["Pe", "Close_Punctuation"], [.closePunctuation]),
            (["Pi", "Initial_Punctuation"], [.initialPunctuation]),
            (["Pf", "Final_Punctuation"], [.finalPunctuation]),
            (["Po", "Other_Punctuation"], [.otherPunctuation]),
            (["S", "Symbol"], [.mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol]),
            (["Sm", "Math_Symbol"], [.mathSymbol]),
            (["Sc", "Currency_Symbol"], [.currencySymbol]),
            (["Sk", "Modifier_Symbol"], [.modifierSymbol]),
            (["So", "Other_Symbol"], [.otherSymbol]),
            (["Z", "Separator"], [.spaceSeparator, .lineSeparator, .paragraphSeparator]),
            (["Zs", "Space_Separator"], [.spaceSeparator]),
            (["Zl", "Line_Separator"], [.lineSeparator]),
            (["Zp", "Paragraph_Separator"], [.paragraphSeparator]),
            (["C", "Other"], [.control, .format, .surrogate, .privateUse, .unassigned]),
            (["Cc", "Control", "cntrl"], [.control]),
            (["Cf", "Format"], [.format]),
            (["Cs", "Surrogate"], [.surrogate]),
            (["Co", "Private_Use"], [.privateUse]),
            (["Cn", "Unassigned"], [.unassigned]),
        ]
        var table: [String: Set<Unicode.GeneralCategory>] = [:]
        for (names, categories) in groups {
            for name in names { table[name] = Set(categories) }
        }
        return table
    }()
}
