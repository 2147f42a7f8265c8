public import FlowCore
import FlowProtocol
public import FlowSchema
import Foundation

/// The declarative endpoints: every `*.json` under `Endpoints/`, with their schemas from
/// `Schemas/` (SPEC §7.1). Loading checks everything and reports every problem with its file
/// and field, so `flowgate check` and a refused start say exactly what to fix.
public struct EndpointCatalog: Sendable {
    /// One collection, ready to be given a store.
    public struct Collection: Sendable {
        public let definition: EndpointDefinition
        public let searchFields: [String]
        /// Declared indexes: each the fields a LIST filters and then sorts on.
        public var indexes: [[String]] = []
        public let validator: JSONSchema?
        /// The definition file, relative to the endpoints folder.
        public let file: String
        /// Where an upstream endpoint forwards its calls (`"kind": "upstream"`); nil for the other kinds.
        public var upstream: Upstream? = nil
    }

    /// An upstream endpoint's HTTP target (SPEC §7.5).
    public struct Upstream: Sendable, Equatable {
        /// The `http` or `https` URL the envelope is POSTed to.
        public let url: String
        /// `timeout_ms`: how long the upstream may take to answer.
        public let timeout: Duration
    }

    /// Something wrong with a definition or schema file.
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public let file: String
        public let field: String?
        public let message: String
        public var description: String { "\(self.file): \(self.field.map { "'\($0)' " } ?? "")\(self.message)" }
    }

    /// Loading found problems; the daemon does not start.
    public struct LoadError: Error, CustomStringConvertible {
        public let problems: [Problem]
        public var description: String { self.problems.map(\.description).joined(separator: "\n") }
    }

    public let collections: [Collection]
    /// Namespaces reserved for providers (`"kind": "provider"`, SPEC §4): the same fields as a
    /// collection, with no search fields.
    public let providerReservations: [Collection]
    /// Endpoints forwarded to an HTTP upstream (`"kind": "upstream"`, SPEC §7.5).
    public let upstreams: [Collection]
    /// How many schema files were compiled.
    public let schemaCount: Int

    static let definitionKeys: Set<String> = ["namespace", "title", "kind", "application", "schema", "methods", "search", "indexes", "public", "scopes", "upstream", "timeout_ms"]
    /// An upstream's `timeout_ms` when the definition gives none.
    public static let defaultUpstreamTimeout: Duration = .seconds(30)

    /// Loads and checks both folders; throws ``LoadError`` listing every problem. A missing
    /// folder is an empty one.
    public static func load(endpoints: String, schemas: String, assertFormats: Bool = false) throws(LoadError) -> EndpointCatalog {
        var problems: [Problem] = []
        var compiled: [String: (JSONValue, JSONSchema)] = [:]
        for file in Self.jsonFiles(in: schemas) {
            switch Self.readJSON(folder: schemas, file: file, label: "Schemas/" + file) {
            case .failure(let problem): problems.append(problem)
            case .success(let value):
                do throws(SchemaError) {
                    compiled[file] = (value, try JSONSchema(value, assertFormats: assertFormats))
                } catch {
                    problems.append(Problem(file: "Schemas/" + file, field: error.keyword, message: "at \(error.location.isEmpty ? "/" : error.location) \(error.message)"))
                }
            }
        }
        var collections: [Collection] = []
        var reservations: [Collection] = []
        var upstreams: [Collection] = []
        var owners: [Namespace: String] = [:]
        for file in Self.jsonFiles(in: endpoints) {
            switch Self.readJSON(folder: endpoints, file: file, label: "Endpoints/" + file) {
            case .failure(let problem): problems.append(problem)
            case .success(let value):
                var reader = DefinitionReader(file: "Endpoints/" + file, value: value, schemas: compiled)
                if let collection = reader.collection() {
                    if let owner = owners[collection.definition.namespace] {
                        reader.problem("namespace", "'\(collection.definition.namespace)' is already declared by \(owner)")
                    } else {
                        owners[collection.definition.namespace] = "Endpoints/" + file
                        if collection.definition.kind == .provider {
                            reservations.append(collection)
                        } else if collection.definition.kind == .upstream {
                            upstreams.append(collection)
                        } else {
                            collections.append(collection)
                        }
                    }
                }
                problems += reader.problems
            }
        }
        guard problems.isEmpty else { throw LoadError(problems: problems) }
        return EndpointCatalog(collections: collections, providerReservations: reservations, upstreams: upstreams, schemaCount: compiled.count)
    }

    /// The `*.json` files below `folder`, as sorted relative paths.
    static func jsonFiles(in folder: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
        return enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") }.sorted()
    }

    static func readJSON(folder: String, file: String, label: String) -> Result<JSONValue, Problem> {
        guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent(file)) else {
            return .failure(Problem(file: label, field: nil, message: "cannot be read"))
        }
        do {
            return .success(try JSONValue(parsing: Array(data), maxDepth: 512))
        } catch {
            return .failure(Problem(file: label, field: nil, message: "is not valid JSON: \(error)"))
        }
    }
}

/// Reads one definition file, collecting problems instead of stopping at the first.
struct DefinitionReader {
    let file: String
    let value: JSONValue
    let schemas: [String: (JSONValue, JSONSchema)]
    private(set) var problems: [EndpointCatalog.Problem] = []

    init(file: String, value: JSONValue, schemas: [String: (JSONValue, JSONSchema)]) {
        self.file = file
        self.value = value
        self.schemas = schemas
    }

    mutating func problem(_ field: String?, _ message: String) {
        self.problems.append(EndpointCatalog.Problem(file: self.file, field: field, message: message))
    }

    mutating func collection() -> EndpointCatalog.Collection? {
        guard case .object(let object) = self.value else {
            self.problem(nil, "must hold a JSON object")
            return nil
        }
        for key in object.keys where !EndpointCatalog.definitionKeys.contains(key) {
            self.problem(key, "is not a definition field (expected one of \(EndpointCatalog.definitionKeys.sorted().joined(separator: ", ")))")
        }
        guard case .string(let text)? = object["namespace"], let namespace = Namespace(text) else {
            self.problem("namespace", "is required: lowercase segments such as \"inventory/device\"")
            return nil
        }
        let kind = object["kind"]?.stringValue ?? "collection"
        guard kind == "collection" || kind == "provider" || kind == "upstream" else {
            self.problem("kind", object["kind"]?.stringValue == nil ? "must be a string" : "'\(kind)' is not supported (collection, provider and upstream are)")
            return nil
        }
        // Providers and upstreams are remote handlers: they declare their methods and do their own searching.
        let isRemote = kind != "collection"
        let upstream = kind == "upstream" ? self.upstream(object) : nil
        if kind != "upstream" {
            for field in ["upstream", "timeout_ms"] where object[field] != nil { self.problem(field, "is only for \"kind\": \"upstream\"") }
        }
        let title = self.string(object, "title") ?? namespace.rawValue
        let application = self.string(object, "application")
        if let application, Namespace(application)?.segments.count != 1 {
            self.problem("application", "must be one lowercase segment")
        }
        let allowed: Set<FlowProtocol.Method> = [.list, .open, .create, .update, .delete, .index]
        let methods = self.methods(object, "methods") ?? (isRemote ? [] : allowed)
        if isRemote && methods.isEmpty { self.problem("methods", "is required for \(kind == "upstream" ? "an" : "a") \(kind) namespace: the methods it serves") }
        if !isRemote && methods.contains(.run) { self.problem("methods", "RUN is not available on collections") }
        let publicMethods = self.methods(object, "public") ?? []
        if !publicMethods.isSubset(of: methods) { self.problem("public", "lists methods that are not in 'methods'") }
        let searchFields = self.strings(object, "search") ?? []
        if isRemote && !searchFields.isEmpty { self.problem("search", "is for collections: a \(kind) does its own searching") }
        for field in searchFields where !CollectionEndpoint.isFieldName(field) {
            self.problem("search", "'\(field)' is not a top-level field name")
        }
        let indexes = self.indexes(object)
        if isRemote && !indexes.isEmpty { self.problem("indexes", "is for collections: a \(kind) keeps its own data") }
        var scopes: [FlowProtocol.Method: Scope] = [:]
        if let given = object["scopes"] {
            if case .object(let entries) = given {
                for (name, scope) in entries {
                    guard let method = FlowProtocol.Method(rawValue: name), case .string(let text) = scope else {
                        self.problem("scopes", "must map method names to scope strings")
                        continue
                    }
                    guard let parsed = Scope(text), case .call = parsed else {
                        self.problem("scopes", "'\(text)' for \(name) is not a call scope ('<namespace pattern>:<METHODS>')")
                        continue
                    }
                    scopes[method] = parsed
                }
            } else {
                self.problem("scopes", "must be an object")
            }
        }
        var schema: (JSONValue, JSONSchema)?
        if let path = self.string(object, "schema") {
            schema = self.schemas[path]
            if schema == nil { self.problem("schema", "'\(path)' is not a schema file under Schemas/") }
        }
        guard self.problems.isEmpty else { return nil }
        let definition = EndpointDefinition(
            namespace: namespace, application: application, title: title, kind: EndpointKind(rawValue: kind), methods: methods,
            publicMethods: publicMethods, scopeOverrides: scopes, schema: schema?.0
        )
        return EndpointCatalog.Collection(
            definition: definition, searchFields: searchFields, indexes: indexes, validator: schema?.1, file: self.file, upstream: upstream
        )
    }

    /// `indexes`: a list whose entries are a field name or a list of field names (filtered on in
    /// order, the last one also sorted on), at most ``CollectionSpec/maxIndexes`` of them.
    private mutating func indexes(_ object: JSONObject) -> [[String]] {
        guard let value = object["indexes"] else { return [] }
        guard case .array(let entries) = value else {
            self.problem("indexes", "must be an array of field names or of lists of field names")
            return []
        }
        if entries.count > CollectionSpec.maxIndexes {
            self.problem("indexes", "declares \(entries.count) indexes; at most \(CollectionSpec.maxIndexes) (each one costs every write)")
        }
        var indexes: [[String]] = []
        for entry in entries {
            let fields: [String]
            switch entry {
            case .string(let field): fields = [field]
            case .array(let items) where items.allSatisfy({ $0.stringValue != nil }): fields = items.compactMap(\.stringValue)
            default:
                self.problem("indexes", "entries must be a field name or a list of field names")
                continue
            }
            guard (1...CollectionSpec.maxIndexFields).contains(fields.count) else {
                self.problem("indexes", "an index names 1 to \(CollectionSpec.maxIndexFields) fields")
                continue
            }
            if let bad = fields.first(where: { !CollectionEndpoint.isFieldName($0) || $0 == "id" }) {
                self.problem("indexes", "'\(bad.prefix(64))' is not a top-level field name" + (bad == "id" ? " that needs an index (id is the key)" : ""))
                continue
            }
            if Set(fields).count != fields.count { self.problem("indexes", "\(fields) names a field twice") }
            if indexes.contains(fields) { self.problem("indexes", "\(fields) is declared twice") }
            indexes.append(fields)
        }
        return indexes
    }

    /// `upstream` (an absolute http or https URL) and `timeout_ms` of an upstream definition.
    private mutating func upstream(_ object: JSONObject) -> EndpointCatalog.Upstream? {
        guard let url = self.string(object, "upstream") else {
            if object["upstream"] == nil { self.problem("upstream", "is required for an upstream: the http:// or https:// URL calls are POSTed to") }
            return nil
        }
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host?.isEmpty == false else {
            self.problem("upstream", "must be an absolute http:// or https:// URL")
            return nil
        }
        var timeout = EndpointCatalog.defaultUpstreamTimeout
        if let given = object["timeout_ms"] {
            guard case .integer(let milliseconds) = given, (1...86_400_000).contains(milliseconds) else {
                self.problem("timeout_ms", "must be an integer from 1 to 86400000")
                return nil
            }
            timeout = .milliseconds(milliseconds)
        }
        return EndpointCatalog.Upstream(url: url, timeout: timeout)
    }

    private mutating func string(_ object: JSONObject, _ field: String) -> String? {
        switch object[field] {
        case nil: return nil
        case .string(let text)?: return text
        default:
            self.problem(field, "must be a string")
            return nil
        }
    }

    private mutating func strings(_ object: JSONObject, _ field: String) -> [String]? {
        guard let value = object[field] else { return nil }
        guard case .array(let items) = value, items.allSatisfy({ $0.stringValue != nil }) else {
            self.problem(field, "must be an array of strings")
            return nil
        }
        return items.compactMap(\.stringValue)
    }

    private mutating func methods(_ object: JSONObject, _ field: String) -> Set<FlowProtocol.Method>? {
        guard let names = self.strings(object, field) else { return nil }
        var methods = Set<FlowProtocol.Method>()
        for name in names {
            guard let method = FlowProtocol.Method(rawValue: name) else {
                self.problem(field, "'\(name)' is not one of LIST, OPEN, UPDATE, DELETE, INDEX, CREATE, RUN")
                continue
            }
            methods.insert(method)
        }
        return methods
    }
}
