import FlowCore
import FlowProtocol

/// The OpenAPI 3.1 document of the HTTP API (SPEC §6.6), generated from the registry at request
/// time: one path per endpoint with and without an object id, the verbs its methods allow, the
/// `Flow-*` headers and query parameters, its data schema, and the error responses of SPEC §3.
struct OpenAPIDocument {
    let endpoints: [any Endpoint]

    func json() -> JSONValue {
        var paths = JSONObject()
        var schemas: JSONObject = ["Response": Self.responseSchema]
        for endpoint in self.endpoints {
            let definition = endpoint.definition
            var dataSchema: JSONValue = [:]
            var storedSchema: JSONValue = [:]
            if let schema = definition.schema {
                let name = Self.componentName(definition.namespace, taken: schemas)
                var embedded = Self.rebasingReferences(schema, under: "#/components/schemas/\(name)")
                if case .object(var object) = embedded {
                    // Its own `$id`/`$schema` would re-base the rewritten references.
                    object.removeValue(forKey: "$id")
                    object.removeValue(forKey: "$schema")
                    embedded = .object(object)
                }
                schemas[name] = embedded
                dataSchema = ["$ref": .string("#/components/schemas/\(name)")]
                storedSchema = dataSchema
                if definition.kind == .collection {
                    schemas[name + ".stored"] = Self.withServerFields(embedded)
                    storedSchema = ["$ref": .string("#/components/schemas/\(name).stored")]
                }
            }
            if let result = definition.resultSchema {
                let name = Self.componentName(definition.namespace, taken: schemas) + ".result"
                schemas[name] = Self.rebasingReferences(result, under: "#/components/schemas/\(name)")
                storedSchema = ["$ref": .string("#/components/schemas/\(name)")]
            }
            let base = "/api/\(definition.application)/\(definition.namespace.rawValue)/"
            let collectionPath = self.operations(endpoint, dataSchema: dataSchema, storedSchema: storedSchema, withObjectID: false)
            if !collectionPath.isEmpty { paths[base] = .object(collectionPath) }
            var itemPath = self.operations(endpoint, dataSchema: dataSchema, storedSchema: storedSchema, withObjectID: true)
            if !itemPath.isEmpty {
                itemPath["parameters"] = [[
                    "name": "objectid", "in": "path", "required": true, "description": "The object's id (percent-encoded).",
                    "schema": Self.objectIDSchema,
                ]]
                paths[base + "{objectid}"] = .object(itemPath)
            }
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "flowgate",
                "version": "1",
                "description": "Every endpoint registered with the gateway, over HTTP. The same calls are available over WebSocket at /ws with the JSON envelope; responses are the same bytes.",
            ],
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "paths": .object(paths),
            "components": [
                "schemas": .object(schemas),
                "parameters": .object(Self.parameters),
                "responses": ["Failure": ["description": "A failure envelope; the status line comes from errorcode.", "content": Self.content(["$ref": "#/components/schemas/Response"])]],
                "securitySchemes": [
                    "flowToken": ["type": "apiKey", "in": "header", "name": "Flow-Auth-Token"],
                    "bearer": ["type": "http", "scheme": "bearer"],
                    "basic": ["type": "http", "scheme": "basic"],
                ],
            ],
        ]
    }

    /// The operations of one path: which verbs carry which of the endpoint's methods (SPEC §6.3).
    private func operations(_ endpoint: any Endpoint, dataSchema: JSONValue, storedSchema: JSONValue, withObjectID: Bool) -> JSONObject {
        let definition = endpoint.definition
        let methods = definition.methods
        let verbs: [(String, [FlowProtocol.Method])] =
            withObjectID
            ? [("get", [.open, .index, .delete]), ("post", [.update, .run]), ("put", [.update]), ("patch", [.update]), ("delete", [.delete])]
            : [("get", [.list]), ("post", [.create])]
        var operations = JSONObject()
        for (verb, carried) in verbs {
            let available = carried.filter(methods.contains)
            guard let primary = available.first else { continue }
            let isList = primary == .list
            var responseData: JSONValue = storedSchema
            if isList { responseData = ["type": "array", "items": storedSchema] }
            if primary == .index { responseData = [:] }
            var operation: JSONObject = [
                "operationId": .string("\(definition.namespace.rawValue.replacing("/", with: "."))_\(verb)\(withObjectID ? "_item" : "")"),
                "summary": .string("\(available.map(\.rawValue).joined(separator: " / ")) \(definition.title)"),
                "description": .string(
                    "Carries \(available.map(\.rawValue).joined(separator: ", ")) (default \(primary.rawValue); choose with Flow-Request-Method)."
                ),
                "tags": [.string(definition.application)],
                "parameters": .array(Self.parameterReferences + Self.methodParameters(available)),
                "responses": .object(Self.responses(data: responseData)),
            ]
            if !definition.isPublic(primary) {
                operation["security"] = [["flowToken": []], ["bearer": []], ["basic": []]]
            }
            if ["post", "put", "patch"].contains(verb) {
                let body: JSONValue = primary == .update ? ["type": "object", "description": "A JSON merge patch (RFC 7386) of the object."] : dataSchema
                operation["requestBody"] = [
                    "required": true,
                    "description": "JSON (an application/x-www-form-urlencoded body is also accepted, as an object of strings).",
                    "content": ["application/json": ["schema": body]],
                ]
            }
            operations[verb] = .object(operation)
        }
        return operations
    }

    static func responses(data: JSONValue) -> JSONObject {
        var responses: JSONObject = [
            "200": [
                "description": "Success envelope.",
                "headers": ["Flow-Request-Id": ["schema": ["type": "string"]], "Flow-User": ["schema": ["type": "string"]]],
                "content": Self.content(["allOf": [["$ref": "#/components/schemas/Response"], ["properties": ["data": data]]]]),
            ]
        ]
        for status in Set(ErrorCode.all.map(\.httpStatus)).sorted() {
            responses[String(status)] = ["$ref": "#/components/responses/Failure"]
        }
        return responses
    }

    static func content(_ schema: JSONValue) -> JSONValue {
        ["application/json": ["schema": schema]]
    }

    static let objectIDSchema: JSONValue = ["type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/\\u0000-\\u001f\\u007f-\\u009f]+$"]

    /// SPEC §6.2's table as reusable parameters (the method is per operation: ``methodParameters(_:)``).
    static let parameters: JSONObject = {
        var parameters = JSONObject()
        let fields: [(String, String, String, String, JSONValue)] = [
            ("FlowAuthToken", "Flow-Auth-Token", "token", "The caller's token (or use Authorization).", ["type": "string"]),
            ("FlowRequestObjectId", "Flow-Request-ObjectId", "objectid", "The object id, instead of the last path segment; must agree with it.", Self.objectIDSchema),
            (
                "FlowRequestNamespace", "Flow-Request-Namespace", "namespace", "The namespace; must agree with the path.",
                ["type": "string", "pattern": "^/?[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*){0,7}/?$", "maxLength": 202]
            ),
            ("FlowRequestParameters", "Flow-Request-Parameters", "parameters", "Method options: a JSON object (or a plain string).", ["type": "string"]),
            ("FlowRequestId", "Flow-Request-Id", "requestid", "Echoed in the response and the Flow-Request-Id header.", ["type": "string", "maxLength": 128]),
        ]
        for (name, header, query, description, schema) in fields {
            parameters[name + "Header"] = ["name": .string(header), "in": "header", "required": false, "description": .string(description), "schema": schema]
            parameters[name + "Query"] = ["name": .string(query), "in": "query", "required": false, "description": .string(description), "schema": schema]
        }
        return parameters
    }()

    /// `Flow-Request-Method` / `method`, limited to what this verb carries for this endpoint.
    static func methodParameters(_ methods: [FlowProtocol.Method]) -> [JSONValue] {
        let schema: JSONValue = ["enum": .array(methods.map { .string($0.rawValue) })]
        let description: JSONValue = "The method; the verb's default when absent. Header and query must agree."
        return [
            ["name": "Flow-Request-Method", "in": "header", "required": false, "description": description, "schema": schema],
            ["name": "method", "in": "query", "required": false, "description": description, "schema": schema],
        ]
    }

    /// A collection object as stored: its own schema plus the server fields.
    static func withServerFields(_ schema: JSONValue) -> JSONValue {
        guard case .object(var object) = schema else { return schema }
        var properties = object["properties"]?.objectValue ?? [:]
        for field in ["id", "created", "updated", "rev"] {
            properties[field] = ["type": "string", "readOnly": true]
        }
        object["properties"] = .object(properties)
        return .object(object)
    }

    static let parameterReferences: [JSONValue] = Self.parameters.keys.map { ["$ref": .string("#/components/parameters/\($0)")] }

    /// SPEC §3's response envelope, from the same `ErrorCode` table the code uses.
    static let responseSchema: JSONValue = [
        "type": "object",
        "required": ["status", "success", "dataType"],
        "properties": [
            "status": ["type": "integer"],
            "success": ["type": "boolean"],
            "data": [:],
            "message": ["type": "string"],
            "errorcode": ["enum": .array(ErrorCode.all.map { .string($0.rawValue) })],
            "errorid": ["type": "string", "format": "uuid"],
            "dataType": ["type": "string"],
            "paging": ["type": "object", "properties": ["next": ["type": "string"], "total": ["type": "integer"]]],
            "requestid": ["type": ["string", "integer"]],
        ],
    ]

    /// A component name for a namespace: `inventory/device` → `inventory.device`.
    static func componentName(_ namespace: Namespace, taken: JSONObject) -> String {
        let base = namespace.rawValue.replacing("/", with: ".")
        var name = base
        var suffix = 2
        while taken[name] != nil {
            name = "\(base)_\(suffix)"
            suffix += 1
        }
        return name
    }

    /// The schema with its in-document `$ref`s (`#/...`) pointing at where it now lives.
    static func rebasingReferences(_ schema: JSONValue, under prefix: String) -> JSONValue {
        switch schema {
        case .object(var object):
            for (key, value) in object {
                if key == "$ref", case .string(let reference) = value, reference.hasPrefix("#/") || reference == "#" {
                    object[key] = .string(prefix + reference.dropFirst())
                } else {
                    object[key] = Self.rebasingReferences(value, under: prefix)
                }
            }
            return .object(object)
        case .array(let items):
            return .array(items.map { Self.rebasingReferences($0, under: prefix) })
        default:
            return schema
        }
    }
}
