import FlowProtocol

/// What evaluated parts of an instance successful subschemas have seen, for `unevaluated*`.
struct Annotations {
    var properties: Set<String> = []
    var items: Set<Int> = []
    var allItems = false

    mutating func merge(_ other: Annotations) {
        self.properties.formUnion(other.properties)
        self.items.formUnion(other.items)
        self.allItems = self.allItems || other.allItems
    }
}

/// Evaluates compiled nodes against an instance. `errors` is nil when only validity matters
/// (inside `anyOf`, `not`, `if`), so no messages are built there.
///
/// The work is bounded (SPEC §11): every node evaluated, item or member visited, value hashed
/// and pattern step spends from `budget`, and evaluation nests at most `maxDepth` deep. Once
/// either runs out, `exhausted` is set and every check fails at once, so the caller answers
/// "too complex" instead of spinning.
struct SchemaEvaluator {
    let schema: JSONSchema
    /// Steps left.
    var budget: Int
    /// How many errors are recorded at most; the rest only count.
    let maxErrors: Int
    private(set) var exhausted = false
    private var depth = 0
    /// Deepest nesting of node evaluations (the instance's depth times the schema's chains).
    static let maxDepth = 512

    init(schema: JSONSchema, budget: Int, maxErrors: Int) {
        self.schema = schema
        self.budget = budget
        self.maxErrors = maxErrors
    }

    /// Spends `steps`; false (and exhausted from then on) when the budget is gone.
    private mutating func spend(_ steps: Int) -> Bool {
        self.budget -= steps
        if self.budget < 0 { self.exhausted = true }
        return !self.exhausted
    }

    mutating func evaluate(_ index: Int, _ instance: JSONValue, _ path: inout InstancePath, _ annotations: inout Annotations, _ errors: inout [ValidationError]?) -> Bool {
        let node = self.schema.nodes[index]
        guard self.spend(node.keywords.count + 1), self.depth < Self.maxDepth else {
            self.exhausted = true
            return false
        }
        self.depth += 1
        defer { self.depth -= 1 }
        if node.alwaysFails {
            self.record(&errors, path.pointer, "is not allowed here")
            return false
        }
        var valid = true
        for keyword in node.keywords {
            if !self.check(keyword, instance, &path, &annotations, &errors) {
                valid = false
                if errors == nil { return false }
            }
        }
        return valid
    }

    /// Evaluates a subschema on its own; its annotations count only if it passes.
    private mutating func probe(_ index: Int, _ instance: JSONValue, _ path: inout InstancePath, _ annotations: inout Annotations, _ errors: inout [ValidationError]?) -> Bool {
        var own = Annotations()
        let valid = self.evaluate(index, instance, &path, &own, &errors)
        if valid {
            _ = self.spend(own.properties.count + own.items.count)
            annotations.merge(own)
        }
        return valid
    }

    /// Evaluates a value at a child location: its annotations describe that location, not this one.
    private mutating func child(_ index: Int, _ instance: JSONValue, _ token: String, _ path: inout InstancePath, _ errors: inout [ValidationError]?) -> Bool {
        var own = Annotations()
        path.push(token)
        defer { path.pop() }
        return self.evaluate(index, instance, &path, &own, &errors)
    }

    private func fail(_ errors: inout [ValidationError]?, _ path: InstancePath, _ message: @autoclosure () -> String) -> Bool {
        self.record(&errors, path.pointer, message())
        return false
    }

    /// Records an error while fewer than `maxErrors` are.
    private func record(_ errors: inout [ValidationError]?, _ pointer: @autoclosure () -> String, _ message: @autoclosure () -> String) {
        guard let count = errors?.count, count < self.maxErrors else { return }
        errors?.append(ValidationError(path: pointer(), message: message()))
    }

    /// Matches `pattern` against `text` with the remaining budget; false when it runs out.
    private mutating func matches(_ pattern: Pattern, _ text: String) -> Bool {
        guard let matched = pattern.matches(text, budget: &self.budget) else {
            self.exhausted = true
            return false
        }
        return matched
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private mutating func check(_ keyword: Keyword, _ instance: JSONValue, _ path: inout InstancePath, _ annotations: inout Annotations, _ errors: inout [ValidationError]?) -> Bool {
        switch keyword {
        case .types(let types):
            if types.contains(where: { $0.matches(instance) }) { return true }
            return self.fail(&errors, path, "must be \(types.map(\.rawValue).sorted().joined(separator: " or ")), not \(instance.typeName)")
        case .enumeration(let values):
            let (found, cost) = values.contains(instance)
            guard self.spend(cost) else { return false }
            return found || self.fail(&errors, path, "must be one of \(JSONValue.array(values.values))")
        case .constant(let value, let cost):
            guard self.spend(cost) else { return false }
            return value.isSchemaEqual(to: instance) || self.fail(&errors, path, "must be \(value)")
        case .minimum(let limit, let exclusive):
            guard let number = instance.doubleValue else { return true }
            if exclusive ? number > limit : number >= limit { return true }
            return self.fail(&errors, path, "must be \(exclusive ? "greater than" : "at least") \(Self.text(limit))")
        case .maximum(let limit, let exclusive):
            guard let number = instance.doubleValue else { return true }
            if exclusive ? number < limit : number <= limit { return true }
            return self.fail(&errors, path, "must be \(exclusive ? "less than" : "at most") \(Self.text(limit))")
        case .multipleOf(let divisor):
            guard let number = instance.doubleValue else { return true }
            return Self.isMultiple(number, of: divisor) || self.fail(&errors, path, "must be a multiple of \(Self.text(divisor))")
        case .minLength(let limit):
            guard case .string(let string) = instance else { return true }
            return string.unicodeScalars.count >= limit || self.fail(&errors, path, "must be at least \(limit) characters long")
        case .maxLength(let limit):
            guard case .string(let string) = instance else { return true }
            return string.unicodeScalars.count <= limit || self.fail(&errors, path, "must be at most \(limit) characters long")
        case .pattern(let pattern):
            guard case .string(let string) = instance else { return true }
            return self.matches(pattern, string) || self.fail(&errors, path, "must match the pattern \(pattern.source)")
        case .format(let format):
            guard self.schema.assertFormats, case .string(let string) = instance, let valid = Formats.check(format, string) else { return true }
            return valid || self.fail(&errors, path, "must be a valid \(format)")
        case .minItems(let limit):
            guard case .array(let items) = instance else { return true }
            return items.count >= limit || self.fail(&errors, path, "must have at least \(limit) items")
        case .maxItems(let limit):
            guard case .array(let items) = instance else { return true }
            return items.count <= limit || self.fail(&errors, path, "must have at most \(limit) items")
        case .uniqueItems:
            guard case .array(let items) = instance else { return true }
            // Hashed on a form where equal values hash alike: linear, not every pair.
            var seen: [Int: [Int]] = [:]
            seen.reserveCapacity(items.count)
            for (offset, item) in items.enumerated() {
                var hasher = Hasher()
                guard self.spend(item.schemaHash(into: &hasher)) else { return false }
                let key = hasher.finalize()
                for earlier in seen[key] ?? [] {
                    guard self.spend(1) else { return false }
                    if items[earlier].isSchemaEqual(to: item) {
                        return self.fail(&errors, path, "must not repeat items (\(earlier) and \(offset) are equal)")
                    }
                }
                seen[key, default: []].append(offset)
            }
            return true
        case .prefixItems(let schemas):
            guard case .array(let items) = instance else { return true }
            var valid = true
            for (offset, index) in schemas.enumerated() where offset < items.count {
                valid = self.child(index, items[offset], String(offset), &path, &errors) && valid
                annotations.items.insert(offset)
                if !valid && errors == nil { return false }
            }
            return valid
        case .items(let index, let start):
            guard case .array(let items) = instance else { return true }
            var valid = true
            for offset in items.indices where offset >= start {
                valid = self.child(index, items[offset], String(offset), &path, &errors) && valid
                if !valid && errors == nil { return false }
            }
            annotations.allItems = true
            return valid
        case .contains(let index, let minimum, let maximum):
            guard case .array(let items) = instance else { return true }
            var matches = 0
            for (offset, item) in items.enumerated() {
                if self.exhausted { return false }
                var ignored: [ValidationError]? = nil
                var own = Annotations()
                path.push(String(offset))
                if self.evaluate(index, item, &path, &own, &ignored) {
                    matches += 1
                    annotations.items.insert(offset)
                }
                path.pop()
            }
            if matches < minimum { return self.fail(&errors, path, "must contain at least \(minimum) matching item\(minimum == 1 ? "" : "s")") }
            if let maximum, matches > maximum { return self.fail(&errors, path, "must contain at most \(maximum) matching items") }
            return true
        case .minProperties(let limit):
            guard case .object(let object) = instance else { return true }
            return object.count >= limit || self.fail(&errors, path, "must have at least \(limit) properties")
        case .maxProperties(let limit):
            guard case .object(let object) = instance else { return true }
            return object.count <= limit || self.fail(&errors, path, "must have at most \(limit) properties")
        case .required(let names):
            guard case .object(let object) = instance else { return true }
            var valid = true
            guard self.spend(names.count) else { return false }
            for name in names where object[name] == nil {
                valid = false
                guard errors != nil else { return false }
                self.record(&errors, path.pointer(appending: name), "is required")
            }
            return valid
        case .dependentRequired(let pairs):
            guard case .object(let object) = instance else { return true }
            var valid = true
            guard self.spend(pairs.count) else { return false }
            for (name, needed) in pairs where object[name] != nil {
                guard self.spend(needed.count) else { return false }
                for other in needed where object[other] == nil {
                    valid = false
                    guard errors != nil else { return false }
                    self.record(&errors, path.pointer(appending: other), "is required when '\(name)' is present")
                }
            }
            return valid
        case .properties(let pairs):
            guard case .object(let object) = instance else { return true }
            var valid = true
            for (name, index) in pairs {
                guard let value = object[name] else { continue }
                valid = self.child(index, value, name, &path, &errors) && valid
                annotations.properties.insert(name)
                if !valid && errors == nil { return false }
            }
            return valid
        case .patternProperties(let pairs):
            guard case .object(let object) = instance else { return true }
            var valid = true
            for (name, value) in object {
                for (pattern, index) in pairs where self.matches(pattern, name) {
                    valid = self.child(index, value, name, &path, &errors) && valid
                    annotations.properties.insert(name)
                    if !valid && errors == nil { return false }
                }
            }
            return valid
        case .additionalProperties(let index, let known, let patterns):
            guard case .object(let object) = instance else { return true }
            var valid = true
            for (name, value) in object where !known.contains(name) {
                if self.exhausted { return false }
                if patterns.contains(where: { self.matches($0, name) }) { continue }
                valid = self.child(index, value, name, &path, &errors) && valid
                annotations.properties.insert(name)
                if !valid && errors == nil { return false }
            }
            return valid
        case .propertyNames(let index):
            guard case .object(let object) = instance else { return true }
            var valid = true
            for name in object.keys {
                var own = Annotations()
                var nameErrors: [ValidationError]? = errors == nil ? nil : []
                path.push(name)
                if !self.evaluate(index, .string(name), &path, &own, &nameErrors) {
                    valid = false
                    self.record(&errors, path.pointer, "is not an allowed property name")
                }
                path.pop()
                if !valid && errors == nil { return false }
            }
            return valid
        case .dependentSchemas(let pairs):
            guard case .object(let object) = instance else { return true }
            var valid = true
            for (name, index) in pairs where object[name] != nil {
                valid = self.probe(index, instance, &path, &annotations, &errors) && valid
                if !valid && errors == nil { return false }
            }
            return valid
        case .allOf(let indices):
            var valid = true
            for index in indices {
                valid = self.probe(index, instance, &path, &annotations, &errors) && valid
                if !valid && errors == nil { return false }
            }
            return valid
        case .anyOf(let indices):
            var valid = false
            for index in indices {
                var quiet: [ValidationError]? = nil
                if self.probe(index, instance, &path, &annotations, &quiet) { valid = true }
            }
            return valid || self.fail(&errors, path, "must match at least one of the anyOf schemas")
        case .oneOf(let indices):
            var matched = 0
            var matchedAnnotations = Annotations()
            for index in indices {
                var quiet: [ValidationError]? = nil
                if self.probe(index, instance, &path, &matchedAnnotations, &quiet) { matched += 1 }
            }
            guard matched == 1 else {
                return self.fail(&errors, path, matched == 0 ? "must match one of the oneOf schemas" : "must match exactly one of the oneOf schemas, not \(matched)")
            }
            annotations.merge(matchedAnnotations)
            return true
        case .not(let index):
            var quiet: [ValidationError]? = nil
            var ignored = Annotations()
            return !self.evaluate(index, instance, &path, &ignored, &quiet) || self.fail(&errors, path, "must not match the 'not' schema")
        case .conditional(let condition, let then, let otherwise):
            var quiet: [ValidationError]? = nil
            if self.probe(condition, instance, &path, &annotations, &quiet) {
                return then.map { self.probe($0, instance, &path, &annotations, &errors) } ?? true
            }
            return otherwise.map { self.probe($0, instance, &path, &annotations, &errors) } ?? true
        case .reference(let index):
            return self.probe(index, instance, &path, &annotations, &errors)
        case .unevaluatedItems(let index):
            guard case .array(let items) = instance, !annotations.allItems else { return true }
            var valid = true
            for offset in items.indices where !annotations.items.contains(offset) {
                valid = self.child(index, items[offset], String(offset), &path, &errors) && valid
                if !valid && errors == nil { return false }
            }
            annotations.allItems = true
            return valid
        case .unevaluatedProperties(let index):
            guard case .object(let object) = instance else { return true }
            var valid = true
            for (name, value) in object where !annotations.properties.contains(name) {
                valid = self.child(index, value, name, &path, &errors) && valid
                annotations.properties.insert(name)
                if !valid && errors == nil { return false }
            }
            return valid
        }
    }

    /// A limit as people write it: `96`, not `96.0`.
    static func text(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }

    static func isMultiple(_ number: Double, of divisor: Double) -> Bool {
        if number.rounded() == number, divisor.rounded() == divisor, abs(number) < 9e15, abs(divisor) < 9e15 {
            return Int64(number) % Int64(divisor) == 0
        }
        let quotient = number / divisor
        guard quotient.isFinite else { return false }
        return abs(quotient - quotient.rounded()) < 1e-9
    }
}
