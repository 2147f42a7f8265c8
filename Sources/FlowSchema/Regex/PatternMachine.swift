/// A pattern compiled for a Pike VM: every thread of the automaton advances in lockstep over
/// the text, one scalar at a time, so a match costs at most (text length × program size) steps
/// whatever the pattern — there is no backtracking to blow up (SPEC §11).
struct PatternMachine: Sendable {
    enum Instruction: Sendable {
        case scalar(UInt32)
        case set(Int)
        /// Continue at both (an alternative, or one more repetition).
        case split(Int, Int)
        case jump(Int)
        case assert(PatternAssertion)
        case match
    }

    /// The largest program accepted: `a{1000}{1000}` and the like are refused, not expanded.
    static let maxInstructions = 10_000

    private(set) var instructions: [Instruction] = []
    private(set) var classes: [ScalarClass] = []
    /// Starts with `^`: only a match from the first position is tried.
    private(set) var anchored = false

    init(_ syntax: PatternSyntax) throws(PatternError) {
        try self.emit(syntax)
        try self.append(.match)
        if case .assertion(.start) = syntax {
            self.anchored = true
        } else if case .sequence(let items) = syntax, case .assertion(.start)? = items.first {
            self.anchored = true
        }
    }

    // MARK: Compiling

    @discardableResult
    private mutating func append(_ instruction: Instruction) throws(PatternError) -> Int {
        guard self.instructions.count < Self.maxInstructions else {
            throw PatternError(message: "is too large once its repetitions are expanded (over \(Self.maxInstructions) steps)")
        }
        self.instructions.append(instruction)
        return self.instructions.count - 1
    }

    private mutating func emit(_ syntax: PatternSyntax) throws(PatternError) {
        switch syntax {
        case .empty:
            break
        case .scalar(let value):
            try self.append(.scalar(value))
        case .set(let set):
            self.classes.append(set)
            try self.append(.set(self.classes.count - 1))
        case .sequence(let items):
            for item in items { try self.emit(item) }
        case .alternatives(let choices):
            var exits: [Int] = []
            for choice in choices.dropLast() {
                let split = try self.append(.split(0, 0))
                try self.emit(choice)
                exits.append(try self.append(.jump(0)))
                self.instructions[split] = .split(split + 1, self.instructions.count)
            }
            try self.emit(choices[choices.count - 1])
            for exit in exits { self.instructions[exit] = .jump(self.instructions.count) }
        case .repetition(let item, let minimum, let maximum):
            for _ in 0..<minimum { try self.emit(item) }
            if let maximum {
                var splits: [Int] = []
                for _ in minimum..<maximum {
                    splits.append(try self.append(.split(0, 0)))
                    try self.emit(item)
                }
                for split in splits { self.instructions[split] = .split(split + 1, self.instructions.count) }
            } else {
                let loop = try self.append(.split(0, 0))
                try self.emit(item)
                try self.append(.jump(loop))
                self.instructions[loop] = .split(loop + 1, self.instructions.count)
            }
        case .assertion(let assertion):
            try self.append(.assert(assertion))
        }
    }

    // MARK: Matching

    /// Whether the pattern matches anywhere in `text` (JSON Schema patterns are not anchored).
    /// Each step spends one unit of `budget`; nil when it ran out before the answer was known.
    func matches(_ text: String, budget: inout Int) -> Bool? {
        let text = Array(text.unicodeScalars.lazy.map(\.value))
        var current = ThreadSet(capacity: self.instructions.count)
        var next = ThreadSet(capacity: self.instructions.count)
        var stack: [Int] = []
        for position in 0...text.count {
            if position == 0 || !self.anchored {
                if self.addClosure(0, to: &current, at: position, in: text, stack: &stack, budget: &budget) { return true }
            } else if current.isEmpty {
                return false
            }
            guard position < text.count else { break }
            let value = text[position]
            for index in 0..<current.count {
                let pc = current.members[index]
                let advances: Bool
                switch self.instructions[pc] {
                case .scalar(let expected): advances = value == expected
                case .set(let set): advances = self.classes[set].contains(value)
                default: advances = false
                }
                if advances, self.addClosure(pc + 1, to: &next, at: position + 1, in: text, stack: &stack, budget: &budget) { return true }
            }
            budget -= current.count + 1
            if budget < 0 { return nil }
            swap(&current, &next)
            next.removeAll()
        }
        return false
    }

    /// Adds `start` and everything reachable from it without reading a scalar; true on a match.
    private func addClosure(_ start: Int, to threads: inout ThreadSet, at position: Int, in text: [UInt32], stack: inout [Int], budget: inout Int) -> Bool {
        stack.append(start)
        while let pc = stack.popLast() {
            guard threads.insert(pc) else { continue }
            budget -= 1
            switch self.instructions[pc] {
            case .match:
                stack.removeAll()
                return true
            case .jump(let target):
                stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .assert(let assertion):
                if Self.holds(assertion, at: position, in: text) { stack.append(pc + 1) }
            case .scalar, .set:
                break
            }
        }
        return false
    }

    private static func holds(_ assertion: PatternAssertion, at position: Int, in text: [UInt32]) -> Bool {
        switch assertion {
        case .start: return position == 0
        case .end: return position == text.count
        case .wordBoundary, .notWordBoundary:
            let before = position > 0 && ScalarClass.isWordCharacter(text[position - 1])
            let after = position < text.count && ScalarClass.isWordCharacter(text[position])
            return (before != after) == (assertion == .wordBoundary)
        }
    }
}

/// The threads alive at one position: a sparse set of program counters, cleared in O(1).
private struct ThreadSet {
    private(set) var members: [Int]
    private var slots: [Int]
    private(set) var count = 0

    init(capacity: Int) {
        self.members = Array(repeating: 0, count: capacity)
        self.slots = Array(repeating: 0, count: capacity)
    }

    var isEmpty: Bool { self.count == 0 }

    /// Adds `pc`; false when it was there already.
    mutating func insert(_ pc: Int) -> Bool {
        let slot = self.slots[pc]
        if slot < self.count && self.members[slot] == pc { return false }
        self.slots[pc] = self.count
        self.members[self.count] = pc
        self.count += 1
        return true
    }

    mutating func removeAll() { self.count = 0 }
}
