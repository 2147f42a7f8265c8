public import FlowProtocol

/// A compiled JSON Schema (draft 2020-12), ready to validate instances.
///
/// Compiling refuses what it cannot check faithfully: a keyword of 2020-12 that is not
/// implemented (`$dynamicRef`), a reference to another document, or a keyword whose value has
/// the wrong shape — each error names the keyword and where it is.
///
/// ```swift
/// let schema = try JSONSchema(["type": "object", "required": ["name"]])
/// schema.validate(["serial": "x"])  // [ValidationError(path: "/name", message: "is required")]
/// ```
public struct JSONSchema: Sendable {
    /// The base URI of a schema without `$id`.
    public static let defaultBaseURI = "https://flowgate.invalid/schema.json"

    /// The steps one validation may take by default (SPEC §11): a few hundred milliseconds at most.
    public static let defaultWorkLimit = 2_000_000
    /// How many errors a validation reports at most.
    public static let maxErrors = 100

    let nodes: [SchemaNode]
    let root: Int
    let assertFormats: Bool
    /// The steps one validation may take; past them the instance is "too complex" (invalid).
    public let workLimit: Int

    /// Compiles `schema`. With `assertFormats`, `format` (date-time, uuid, email) is checked,
    /// not only an annotation. Each validation takes at most `workLimit` steps (nodes evaluated,
    /// values visited, pattern steps), so no instance makes it slow.
    public init(
        _ schema: JSONValue, baseURI: String = JSONSchema.defaultBaseURI, assertFormats: Bool = false,
        workLimit: Int = JSONSchema.defaultWorkLimit
    ) throws(SchemaError) {
        var compiler = SchemaCompiler(document: schema, baseURI: baseURI)
        self.root = try compiler.compileRoot()
        self.nodes = compiler.nodes
        self.assertFormats = assertFormats
        self.workLimit = workLimit
    }

    /// The ways `instance` breaks the schema (at most ``maxErrors`` of them); empty when it is
    /// valid. An instance that takes more than ``workLimit`` steps to check gets one error, at
    /// the root, saying it is too complex.
    public func validate(_ instance: JSONValue) -> [ValidationError] {
        var errors: [ValidationError]? = []
        var evaluator = self.evaluator()
        var annotations = Annotations()
        var path = InstancePath()
        _ = evaluator.evaluate(self.root, instance, &path, &annotations, &errors)
        if evaluator.exhausted { return [Self.tooComplex] }
        return errors ?? []
    }

    /// Whether `instance` is valid (false when it is too complex to check).
    public func isValid(_ instance: JSONValue) -> Bool {
        var errors: [ValidationError]? = nil
        var evaluator = self.evaluator()
        var annotations = Annotations()
        var path = InstancePath()
        let valid = evaluator.evaluate(self.root, instance, &path, &annotations, &errors)
        return valid && !evaluator.exhausted
    }

    private func evaluator() -> SchemaEvaluator {
        SchemaEvaluator(schema: self, budget: self.workLimit, maxErrors: Self.maxErrors)
    }

    /// The one error of an instance that takes too long to check.
    public static let tooComplex = ValidationError(
        path: "", message: "is too large or too deeply nested to check against this schema"
    )
}

/// One way an instance breaks a schema: where (a JSON Pointer into the instance) and why.
public struct ValidationError: Sendable, Hashable, CustomStringConvertible {
    /// JSON Pointer to the offending value ("" for the whole instance, "/name", "/ports/0").
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(self.path.isEmpty ? "/" : self.path): \(self.message)" }

    /// `{"path", "message"}`, as in a `VALIDATION_FAILED` response.
    public var jsonValue: JSONValue { ["path": .string(self.path), "message": .string(self.message)] }
}

/// Why a schema cannot be used.
public struct SchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem it is.
    public enum Kind: Sendable, Equatable {
        /// A 2020-12 keyword this validator does not implement.
        case unsupportedKeyword
        /// A `$ref` to a document other than this one (or one that does not resolve).
        case externalReference
        /// A keyword whose value has the wrong type or shape.
        case invalidKeyword
        /// `$ref`s that form a cycle without stepping into the instance (checking would never end).
        case referenceCycle
        /// A schema past a size limit: a pattern too large once expanded, subschemas chained too deep.
        case tooComplex
    }

    public let kind: Kind
    /// The keyword at fault.
    public let keyword: String
    /// JSON Pointer to the keyword inside the schema.
    public let location: String
    public let message: String

    public var description: String { "\(self.location.isEmpty ? "/" : self.location): '\(self.keyword)' \(self.message)" }
}

/// The instance location being evaluated, as pointer tokens.
struct InstancePath {
    private(set) var tokens: [String] = []

    mutating func push(_ token: String) { self.tokens.append(token) }
    mutating func pop() { self.tokens.removeLast() }

    var pointer: String {
        self.tokens.map { "/" + JSONPointer.escape($0) }.joined()
    }

    func pointer(appending token: String) -> String {
        self.pointer + "/" + JSONPointer.escape(token)
    }
}

/// JSON Pointer (RFC 6901) helpers.
enum JSONPointer {
    static func escape(_ token: String) -> String {
        guard token.contains("~") || token.contains("/") else { return token }
        return token.replacing("~", with: "~0").replacing("/", with: "~1")
    }

    static func unescape(_ token: Substring) -> String {
        String(token).replacing("~1", with: "/").replacing("~0", with: "~")
    }

    /// The tokens of a pointer such as `/a/b~1c` (already percent-decoded).
    static func tokens(_ pointer: String) -> [String]? {
        if pointer.isEmpty { return [] }
        guard pointer.hasPrefix("/") else { return nil }
        return pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(Self.unescape)
    }
}
