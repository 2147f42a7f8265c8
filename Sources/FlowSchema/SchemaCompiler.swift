import FlowProtocol
import Foundation

/// Turns a schema document into ``SchemaNode``s: first indexes every resource (`$id`) and
/// anchor, then compiles from the root, following `$ref`s within the document.
struct SchemaCompiler {
    /// 2020-12 keywords that are not implemented: a schema using one is refused, never half-checked.
    static let unsupportedKeywords: Set<String> = ["$dynamicRef"]
    /// Keywords whose value is one subschema.
    static let singleSubschema = [
        "additionalProperties", "propertyNames", "items", "contains", "not", "if", "then", "else",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    ]
    /// Keywords whose value is an array of subschemas.
    static let arraySubschemas = ["prefixItems", "allOf", "anyOf", "oneOf"]
    /// Keywords whose value is an object of subschemas.
    static let objectSubschemas = ["properties", "patternProperties", "$defs", "dependentSchemas", "definitions"]

    let document: JSONValue
    private(set) var nodes: [SchemaNode] = []
    /// Resource URI (no fragment) → pointer of its root.
    private var resources: [String: [String]] = [:]
    /// `uri#anchor` → pointer.
    private var anchors: [String: [String]] = [:]
    /// Pointer → base URI in force there.
    private var baseURIs: [[String]: String] = [:]
    /// Pointer → compiled node.
    private var compiled: [[String]: Int] = [:]
    /// Node → its pointer (for errors).
    private var pointers: [[String]] = []
    /// Nodes reserved but not compiled yet: compiling is a loop over this, not a recursion, so
    /// a long chain of `$ref`s cannot exhaust the stack.
    private var pending: [Int] = []

    init(document: JSONValue, baseURI: String) {
        self.document = document
        self.index(document, at: [], base: URIReference.stripFragment(baseURI))
    }

    mutating func compileRoot() throws(SchemaError) -> Int {
        let root = self.compile(at: [])
        while let index = self.pending.popLast() {
            let pointer = self.pointers[index]
            guard let schema = self.value(at: pointer) else {
                throw SchemaError(kind: .externalReference, keyword: "$ref", location: Self.pointerText(pointer), message: "points at nothing")
            }
            self.nodes[index] = try self.compileNode(schema, at: pointer)
        }
        try ReferenceCycles(nodes: self.nodes, pointers: self.pointers).check()
        return root
    }

    // MARK: Indexing

    private mutating func index(_ schema: JSONValue, at pointer: [String], base: String) {
        guard case .object(let object) = schema else {
            self.baseURIs[pointer] = base
            return
        }
        var base = base
        if case .string(let id)? = object["$id"], let resolved = URIReference.resolve(id, against: base) {
            base = URIReference.stripFragment(resolved)
            self.resources[base] = pointer
        }
        if pointer.isEmpty { self.resources[base] = self.resources[base] ?? [] }
        self.baseURIs[pointer] = base
        for key in ["$anchor", "$dynamicAnchor"] {
            if case .string(let anchor)? = object[key] { self.anchors[base + "#" + anchor] = pointer }
        }
        for key in Self.singleSubschema {
            if let sub = object[key] { self.index(sub, at: pointer + [key], base: base) }
        }
        for key in Self.arraySubschemas {
            if case .array(let subs)? = object[key] {
                for (offset, sub) in subs.enumerated() { self.index(sub, at: pointer + [key, String(offset)], base: base) }
            }
        }
        for key in Self.objectSubschemas {
            if case .object(let subs)? = object[key] {
                for (name, sub) in subs { self.index(sub, at: pointer + [key, name], base: base) }
            }
        }
    }

    // MARK: Compiling

    private func value(at pointer: [String]) -> JSONValue? {
        var current = self.document
        for token in pointer {
            switch current {
            case .object(let object):
                guard let next = object[token] else { return nil }
                current = next
            case .array(let array):
                guard let offset = Int(token), array.indices.contains(offset) else { return nil }
                current = array[offset]
            default:
                return nil
            }
        }
        return current
    }

    private func base(at pointer: [String]) -> String {
        var prefix = pointer
        while true {
            if let base = self.baseURIs[prefix] { return base }
            if prefix.isEmpty { return JSONSchema.defaultBaseURI }
            prefix.removeLast()
        }
    }

    /// The node of the subschema at `pointer`, reserved now and compiled by the loop in ``compileRoot()``.
    private mutating func compile(at pointer: [String]) -> Int {
        if let index = self.compiled[pointer] { return index }
        let index = self.nodes.count
        self.nodes.append(SchemaNode())
        self.pointers.append(pointer)
        self.compiled[pointer] = index
        self.pending.append(index)
        return index
    }

    private mutating func compileNode(_ schema: JSONValue, at pointer: [String]) throws(SchemaError) -> SchemaNode {
        switch schema {
        case .bool(let accepts): return SchemaNode(alwaysFails: !accepts)
        case .object(let object):
            var reader = KeywordReader(object: object, pointer: pointer)
            var keywords: [Keyword] = []
            for key in object.keys {
                if Self.unsupportedKeywords.contains(key) {
                    throw reader.error(key, .unsupportedKeyword, "is not implemented by this validator")
                }
                if let keyword = try self.compileKeyword(key, &reader) { keywords.append(keyword) }
            }
            keywords.sort { !$0.runsLast && $1.runsLast }
            return SchemaNode(keywords: keywords)
        default:
            throw SchemaError(kind: .invalidKeyword, keyword: pointer.last ?? "schema", location: Self.pointerText(pointer), message: "must be a schema (an object or a boolean)")
        }
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private mutating func compileKeyword(_ key: String, _ reader: inout KeywordReader) throws(SchemaError) -> Keyword? {
        let pointer = reader.pointer
        switch key {
        case "type":
            return .types(try reader.types(key))
        case "enum":
            return .enumeration(ValueSet(try reader.array(key)))
        case "const":
            return .constant(reader.object[key]!, cost: reader.object[key]!.schemaNodeCount)
        case "minimum", "exclusiveMinimum":
            return .minimum(try reader.number(key), exclusive: key == "exclusiveMinimum")
        case "maximum", "exclusiveMaximum":
            return .maximum(try reader.number(key), exclusive: key == "exclusiveMaximum")
        case "multipleOf":
            let divisor = try reader.number(key)
            guard divisor > 0 else { throw reader.error(key, .invalidKeyword, "must be greater than 0") }
            return .multipleOf(divisor)
        case "minLength": return .minLength(try reader.count(key))
        case "maxLength": return .maxLength(try reader.count(key))
        case "minItems": return .minItems(try reader.count(key))
        case "maxItems": return .maxItems(try reader.count(key))
        case "minProperties": return .minProperties(try reader.count(key))
        case "maxProperties": return .maxProperties(try reader.count(key))
        case "uniqueItems":
            return try reader.bool(key) ? .uniqueItems : nil
        case "pattern":
            return .pattern(try reader.pattern(key, reader.string(key)))
        case "format":
            return .format(try reader.string(key))
        case "required":
            return .required(try reader.strings(key))
        case "dependentRequired":
            var pairs: [(String, [String])] = []
            for (name, value) in try reader.objectValue(key) {
                let names = value.arrayValue?.compactMap(\.stringValue)
                guard let names, names.count == value.arrayValue?.count else {
                    throw reader.error(key, .invalidKeyword, "must map names to arrays of strings")
                }
                pairs.append((name, names))
            }
            return .dependentRequired(pairs)
        case "prefixItems":
            return .prefixItems(try self.compileArray(key, &reader))
        case "items":
            var from = 0
            if case .array(let prefix)? = reader.object["prefixItems"] { from = prefix.count }
            return .items(self.compile(at: pointer + [key]), from: from)
        case "contains":
            let minimum = try reader.object["minContains"] == nil ? 1 : reader.count("minContains")
            let maximum: Int? = try reader.object["maxContains"] == nil ? nil : reader.count("maxContains")
            return .contains(self.compile(at: pointer + [key]), min: minimum, max: maximum)
        case "properties":
            var pairs: [(String, Int)] = []
            for name in try reader.objectValue(key).keys { pairs.append((name, self.compile(at: pointer + [key, name]))) }
            return .properties(pairs)
        case "patternProperties":
            var pairs: [(Pattern, Int)] = []
            for name in try reader.objectValue(key).keys {
                pairs.append((try reader.pattern(key, name), self.compile(at: pointer + [key, name])))
            }
            return .patternProperties(pairs)
        case "additionalProperties":
            let known = Set((reader.object["properties"]?.objectValue?.keys).map(Array.init) ?? [])
            var patterns: [Pattern] = []
            for name in reader.object["patternProperties"]?.objectValue?.keys ?? [] {
                patterns.append(try reader.pattern("patternProperties", name))
            }
            return .additionalProperties(self.compile(at: pointer + [key]), known: known, patterns: patterns)
        case "propertyNames":
            return .propertyNames(self.compile(at: pointer + [key]))
        case "dependentSchemas":
            var pairs: [(String, Int)] = []
            for name in try reader.objectValue(key).keys { pairs.append((name, self.compile(at: pointer + [key, name]))) }
            return .dependentSchemas(pairs)
        case "allOf": return .allOf(try self.compileArray(key, &reader, nonEmpty: true))
        case "anyOf": return .anyOf(try self.compileArray(key, &reader, nonEmpty: true))
        case "oneOf": return .oneOf(try self.compileArray(key, &reader, nonEmpty: true))
        case "not": return .not(self.compile(at: pointer + [key]))
        case "if":
            let then: Int? = reader.object["then"] == nil ? nil : self.compile(at: pointer + ["then"])
            let otherwise: Int? = reader.object["else"] == nil ? nil : self.compile(at: pointer + ["else"])
            return .conditional(if: self.compile(at: pointer + [key]), then: then, else: otherwise)
        case "$ref":
            return .reference(try self.compileReference(try reader.string(key), &reader))
        case "unevaluatedItems":
            return .unevaluatedItems(self.compile(at: pointer + [key]))
        case "unevaluatedProperties":
            return .unevaluatedProperties(self.compile(at: pointer + [key]))
        default:
            // Annotations ($schema, title, default, …), keywords read with another one (minContains,
            // then, else), $defs, and unknown keywords: 2020-12 ignores what it does not know.
            return nil
        }
    }

    private mutating func compileArray(_ key: String, _ reader: inout KeywordReader, nonEmpty: Bool = false) throws(SchemaError) -> [Int] {
        let items = try reader.array(key)
        if nonEmpty && items.isEmpty { throw reader.error(key, .invalidKeyword, "must not be empty") }
        var indices: [Int] = []
        for offset in items.indices { indices.append(self.compile(at: reader.pointer + [key, String(offset)])) }
        return indices
    }

    private mutating func compileReference(_ reference: String, _ reader: inout KeywordReader) throws(SchemaError) -> Int {
        let base = self.base(at: reader.pointer)
        guard let resolved = URIReference.resolve(reference, against: base) else {
            throw reader.error("$ref", .externalReference, "'\(reference)' cannot be resolved")
        }
        let (resource, fragment) = URIReference.split(resolved)
        guard let root = self.resources[resource] else {
            throw reader.error("$ref", .externalReference, "'\(reference)' refers to another document; only references within the schema are supported")
        }
        let target: [String]
        if fragment.isEmpty {
            target = root
        } else if fragment.hasPrefix("/") {
            guard let tokens = JSONPointer.tokens(fragment.removingPercentEncoding ?? fragment) else {
                throw reader.error("$ref", .invalidKeyword, "'\(reference)' is not a valid JSON Pointer")
            }
            target = root + tokens
        } else if let anchor = self.anchors[resource + "#" + fragment] {
            target = anchor
        } else {
            throw reader.error("$ref", .externalReference, "'\(reference)' names an anchor that does not exist")
        }
        guard self.value(at: target) != nil else {
            throw reader.error("$ref", .externalReference, "'\(reference)' points at nothing")
        }
        return self.compile(at: target)
    }

    static func pointerText(_ pointer: [String]) -> String {
        pointer.map { "/" + JSONPointer.escape($0) }.joined()
    }
}

/// Reads keyword values of one schema object, with errors that name the keyword and its place.
struct KeywordReader {
    let object: JSONObject
    let pointer: [String]

    func error(_ key: String, _ kind: SchemaError.Kind, _ message: String) -> SchemaError {
        SchemaError(kind: kind, keyword: key, location: SchemaCompiler.pointerText(self.pointer + [key]), message: message)
    }

    func number(_ key: String) throws(SchemaError) -> Double {
        guard let number = self.object[key]?.doubleValue else { throw self.error(key, .invalidKeyword, "must be a number") }
        return number
    }

    func count(_ key: String) throws(SchemaError) -> Int {
        switch self.object[key] {
        case .integer(let value)? where value >= 0: return Int(value)
        case .number(let value)? where value >= 0 && value.rounded() == value && value < 1e15: return Int(value)
        default: throw self.error(key, .invalidKeyword, "must be a non-negative integer")
        }
    }

    func bool(_ key: String) throws(SchemaError) -> Bool {
        guard case .bool(let value)? = self.object[key] else { throw self.error(key, .invalidKeyword, "must be a boolean") }
        return value
    }

    func string(_ key: String) throws(SchemaError) -> String {
        guard case .string(let value)? = self.object[key] else { throw self.error(key, .invalidKeyword, "must be a string") }
        return value
    }

    func array(_ key: String) throws(SchemaError) -> [JSONValue] {
        guard case .array(let value)? = self.object[key] else { throw self.error(key, .invalidKeyword, "must be an array") }
        return value
    }

    func objectValue(_ key: String) throws(SchemaError) -> JSONObject {
        guard case .object(let value)? = self.object[key] else { throw self.error(key, .invalidKeyword, "must be an object") }
        return value
    }

    func strings(_ key: String) throws(SchemaError) -> [String] {
        let items = try self.array(key)
        let strings = items.compactMap(\.stringValue)
        guard strings.count == items.count else { throw self.error(key, .invalidKeyword, "must be an array of strings") }
        return strings
    }

    func types(_ key: String) throws(SchemaError) -> Set<JSONType> {
        let names: [String]
        switch self.object[key] {
        case .string(let name)?: names = [name]
        case .array?: names = try self.strings(key)
        default: throw self.error(key, .invalidKeyword, "must be a type name or an array of them")
        }
        var types = Set<JSONType>()
        for name in names {
            guard let type = JSONType(rawValue: name) else { throw self.error(key, .invalidKeyword, "has an unknown type '\(name)'") }
            types.insert(type)
        }
        return types
    }

    func pattern(_ key: String, _ source: String) throws(SchemaError) -> Pattern {
        do {
            return try Pattern(source)
        } catch {
            throw self.error(key, .invalidKeyword, "has a regular expression '\(source.prefix(80))' that \(error.message)")
        }
    }
}
