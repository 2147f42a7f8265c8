public import FlowProtocol

/// The data of `CREATE system/providers` (SPEC §5.4 point 1), checked field by field.
public struct ProviderRegistration: Sendable, Equatable {
    public var namespace: Namespace
    /// Defaults to the namespace's first segment.
    public var application: String?
    public var title: String?
    /// Required unless an `Endpoints/` file reserves the namespace.
    public var methods: Set<FlowProtocol.Method>?
    /// The JSON Schema for `data` (CREATE, UPDATE, RUN).
    public var schema: JSONValue?
    /// Calls in flight at once on this provider.
    public var concurrency: Int
    /// How long the provider may take to answer one call.
    public var timeout: Duration

    public static let defaultConcurrency = 64
    public static let defaultTimeout: Duration = .seconds(30)
    static let fields: Set<String> = ["namespace", "application", "title", "methods", "schema", "concurrency", "timeout_ms"]

    public init(
        namespace: Namespace, application: String? = nil, title: String? = nil, methods: Set<FlowProtocol.Method>?, schema: JSONValue? = nil,
        concurrency: Int = Self.defaultConcurrency, timeout: Duration = Self.defaultTimeout
    ) {
        self.namespace = namespace
        self.application = application
        self.title = title
        self.methods = methods
        self.schema = schema
        self.concurrency = concurrency
        self.timeout = timeout
    }

    /// Reads the registration from a call's data; `VALIDATION_FAILED` lists every problem.
    public init(parsing data: JSONValue?) throws(FlowError) {
        guard case .object(let object)? = data else {
            throw FlowError.validationFailed([DataProblem(path: "", message: "must be an object")])
        }
        var problems: [DataProblem] = []
        for key in object.keys where !Self.fields.contains(key) {
            problems.append(DataProblem(path: "/\(key)", message: "is not a registration field (\(Self.fields.sorted().joined(separator: ", ")))"))
        }
        let namespace = object["namespace"]?.stringValue.flatMap { Namespace($0) }
        if namespace == nil { problems.append(DataProblem(path: "/namespace", message: "is required: lowercase segments such as \"scheduler/queue\"")) }
        var application: String?
        if let value = object["application"] {
            application = value.stringValue
            if application.flatMap(Namespace.init)?.segments.count != 1 {
                problems.append(DataProblem(path: "/application", message: "must be one lowercase segment"))
            }
        }
        let title = object["title"]?.stringValue
        if object["title"] != nil && title == nil { problems.append(DataProblem(path: "/title", message: "must be a string")) }
        var methods: Set<FlowProtocol.Method>?
        if let value = object["methods"] {
            let names = value.arrayValue?.compactMap(\.stringValue) ?? []
            let parsed = names.compactMap(FlowProtocol.Method.init(rawValue:))
            if parsed.isEmpty || parsed.count != value.arrayValue?.count {
                problems.append(DataProblem(path: "/methods", message: "must be a non-empty array of LIST, OPEN, UPDATE, DELETE, INDEX, CREATE, RUN"))
            }
            methods = Set(parsed)
        }
        let schema = object["schema"]
        if let schema, schema.objectValue == nil, schema != .bool(true), schema != .bool(false) {
            problems.append(DataProblem(path: "/schema", message: "must be a JSON Schema (an object or a boolean)"))
        }
        let concurrency = Self.integer(object, "concurrency", in: 1...10_000, problems: &problems) ?? Self.defaultConcurrency
        let timeout = Self.integer(object, "timeout_ms", in: 1...86_400_000, problems: &problems).map { Duration.milliseconds($0) } ?? Self.defaultTimeout
        guard problems.isEmpty, let namespace else { throw FlowError.validationFailed(problems) }
        self.init(
            namespace: namespace, application: application, title: title, methods: methods, schema: schema,
            concurrency: concurrency, timeout: timeout
        )
    }

    private static func integer(_ object: JSONObject, _ field: String, in range: ClosedRange<Int>, problems: inout [DataProblem]) -> Int? {
        guard let value = object[field] else { return nil }
        guard case .integer(let integer) = value, let int = Int(exactly: integer), range.contains(int) else {
            problems.append(DataProblem(path: "/\(field)", message: "must be an integer in \(range.lowerBound)...\(range.upperBound)"))
            return nil
        }
        return int
    }

    /// The endpoint definition a first registration gives its namespace.
    func definition() -> EndpointDefinition {
        EndpointDefinition(
            namespace: self.namespace, application: self.application, title: self.title ?? self.namespace.rawValue,
            kind: .provider, methods: self.methods ?? [], schema: self.schema
        )
    }

    /// Why this registration cannot join providers serving `definition`; nil when it can.
    func mismatch(with definition: EndpointDefinition) -> String? {
        if let application = self.application, application != definition.application {
            return "application '\(application)' differs from '\(definition.application)'"
        }
        if let methods = self.methods, methods != definition.methods {
            return "methods differ from \(definition.methods.sorted().map(\.rawValue).joined(separator: ","))"
        }
        if let schema = self.schema, schema != definition.schema {
            return "the schema differs from the one the namespace has"
        }
        return nil
    }
}
