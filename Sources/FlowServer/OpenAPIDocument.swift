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
            }
            let base = "/api/\(definition.application)/\(definition.namespace.rawValue)/"
            let collectionPath = self.operations(endpoint, dataSchema: dataSchema, withObjectID: false)
            if !collectionPath.isEmpty { paths[base] = .object(collectionPath) }
            var itemPath = self.operations(endpoint, dataSchema: dataSchema, withObjectID: true)
            if !itemPath.isEmpty {
                itemPath["parameters"] = [[
                    "name": "objectid", "in": "path", "required": true, "description": "The object's id (percent-encoded).",
                    "schema": ["type": "string", "minLength": 1, "maxLength": 200],
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
    private func operations(_ endpoint: any Endpoint, dataSchema: JSONValue, withObjectID: Bool) -> JSONObject {
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
            var responseData: JSONValue = dataSchema
            if isList { responseData = ["type": "array", "items": dataSchema] }
            if primary == .index { responseData = [:] }
            var operation: JSONObject = [
                "operationId": .string("\(definition.namespace.rawValue.replacing("/", with: "."))_\(verb)\(withObjectID ? "_item" : "")"),
                "summary": .string("\(available.map(\.rawValue).joined(separator: " / ")) \(definition.title)"),
                "description": .string(
                    "Carries \(available.map(\.rawValue).joined(separator: ", ")) (default \(primary.rawValue); choose with Flow-Request-Method)."
                ),
                "tags": [.string(definition.application)],
                "parameters": .array(Self.parameterReferences),
                "responses": .object(Self.responses(data: responseData)),
            ]
            if !definition.isPublic(primary) {
                operation["security"] = [["flowToken": []], ["bearer": []], ["basic": []]]
            }
            if ["post", "put", "patch"].contains(verb) {
                let body: JSONValue = primary == .update ? ["type": "object", "description": "A JSON merge patch (RFC 7386) of the object."] : dataSchema
                operation["requestBody"] = [
                    "required": true,
                    "content": [
                        "application/json": ["schema": body],
                        "application/x-www-form-urlencoded": ["schema": ["type": "object", "additionalProperties": ["type": "string"]]],
                    ],
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

    /// SPEC §6.2's table as reusable parameters.
    static let parameters: JSONObject = {
        var parameters = JSONObject()
        let fields: [(String, String, String, String)] = [
            ("FlowAuthToken", "Flow-Auth-Token", "token", "The caller's token (or use Authorization)."),
            ("FlowRequestMethod", "Flow-Request-Method", "method", "LIST, OPEN, UPDATE, DELETE, INDEX, CREATE or RUN; the verb's default when absent."),
            ("FlowRequestObjectId", "Flow-Request-ObjectId", "objectid", "The object id, instead of the last path segment."),
            ("FlowRequestNamespace", "Flow-Request-Namespace", "namespace", "The namespace; must agree with the path."),
            ("FlowRequestParameters", "Flow-Request-Parameters", "parameters", "Method options: a JSON object or a plain string."),
            ("FlowRequestId", "Flow-Request-Id", "requestid", "Echoed in the response and the Flow-Request-Id header."),
        ]
        for (name, header, query, description) in fields {
            let schema: JSONValue = name == "FlowRequestMethod" ? ["enum": .array(FlowProtocol.Method.allCases.map { .string($0.rawValue) })] : ["type": "string"]
            parameters[name + "Header"] = ["name": .string(header), "in": "header", "required": false, "description": .string(description), "schema": schema]
            parameters[name + "Query"] = ["name": .string(query), "in": "query", "required": false, "description": .string(description), "schema": schema]
        }
        return parameters
    }()

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
