public import FlowProtocol

extension JSONValue {
    /// JSON Schema equality: numbers compare by value (`1 == 1.0`), objects regardless of key order.
    public func isSchemaEqual(to other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        // Code points, not Swift's canonical equivalence: "é" and "e\u{301}" differ in JSON.
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.integer(let a), .integer(let b)): return a == b
        case (.integer(let a), .number(let b)), (.number(let b), .integer(let a)):
            // Mathematically: 2^60 + 1 is not the double nearest to it.
            return Int64(exactly: b) == a
        case (.number(let a), .number(let b)): return a == b
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.isSchemaEqual(to: $1) }
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let otherValue = b[key], value.isSchemaEqual(to: otherValue) else { return false }
            }
            return true
        default: return false
        }
    }

    /// Feeds a hash consistent with ``isSchemaEqual(to:)`` into `hasher` (equal values hash
    /// alike: `1` and `1.0`, objects in any key order) and returns how many values it visited.
    @discardableResult
    func schemaHash(into hasher: inout Hasher) -> Int {
        switch self {
        case .null:
            hasher.combine(0 as UInt8)
            return 1
        case .bool(let bool):
            hasher.combine(1 as UInt8)
            hasher.combine(bool)
            return 1
        case .integer(let integer):
            hasher.combine(2 as UInt8)
            hasher.combine(integer)
            return 1
        case .number(let number):
            if let integer = Int64(exactly: number) {
                hasher.combine(2 as UInt8)
                hasher.combine(integer)
            } else {
                hasher.combine(3 as UInt8)
                hasher.combine(number)
            }
            return 1
        case .string(let string):
            hasher.combine(4 as UInt8)
            for scalar in string.unicodeScalars { hasher.combine(scalar.value) }
            hasher.combine(string.unicodeScalars.count)
            return 1
        case .array(let items):
            hasher.combine(5 as UInt8)
            hasher.combine(items.count)
            var visited = 1
            for item in items { visited += item.schemaHash(into: &hasher) }
            return visited
        case .object(let object):
            // Order-independent: the members' own hashes are added up.
            var sum: UInt = 0
            var visited = 1
            for (key, value) in object {
                var member = Hasher()
                member.combine(key)
                visited += value.schemaHash(into: &member)
                sum &+= UInt(bitPattern: member.finalize())
            }
            hasher.combine(6 as UInt8)
            hasher.combine(object.count)
            hasher.combine(sum)
            return visited
        }
    }

    /// How many values this one holds, itself included.
    var schemaNodeCount: Int {
        switch self {
        case .array(let items): items.reduce(1) { $0 + $1.schemaNodeCount }
        case .object(let object): object.values.reduce(1) { $0 + $1.schemaNodeCount }
        default: 1
        }
    }

    /// The numeric value, if this is a number.
    var doubleValue: Double? {
        switch self {
        case .integer(let integer): Double(integer)
        case .number(let number): number
        default: nil
        }
    }
}

/// JSON values looked up by schema equality in constant time: `enum`'s values, and the items
/// seen so far by `uniqueItems`.
struct ValueSet: Sendable {
    private var buckets: [Int: [JSONValue]] = [:]
    private(set) var values: [JSONValue] = []

    init(_ values: [JSONValue] = []) {
        for value in values { _ = self.insert(value) }
    }

    /// Adds `value` unless an equal one is there; returns the equal one found, if any, and the
    /// work done (values hashed and compared).
    mutating func insert(_ value: JSONValue) -> (existing: JSONValue?, cost: Int) {
        var hasher = Hasher()
        var cost = value.schemaHash(into: &hasher)
        let key = hasher.finalize()
        for candidate in self.buckets[key] ?? [] {
            cost += 1
            if candidate.isSchemaEqual(to: value) { return (candidate, cost) }
        }
        self.buckets[key, default: []].append(value)
        self.values.append(value)
        return (nil, cost)
    }

    /// Whether an equal value is in the set, and the work done.
    func contains(_ value: JSONValue) -> (found: Bool, cost: Int) {
        var hasher = Hasher()
        var cost = value.schemaHash(into: &hasher)
        for candidate in self.buckets[hasher.finalize()] ?? [] {
            cost += 1
            if candidate.isSchemaEqual(to: value) { return (true, cost) }
        }
        return (false, cost)
    }
}
