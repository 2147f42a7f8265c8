import FlowCore
import FlowProtocol
import HTTPTypes

/// The OpenAPI 3.1 document of the HTTP API (SPEC §6.6), generated from the registry at request
/// time: one path per endpoint with and without an object id, the verbs its methods allow, the
/// `Flow-*` headers and query parameters, its data schema, and the error responses of SPEC §3.
struct OpenAPIDocument {
    let endpoints: [any Endpoint]

    func json() -> JSONValue {
        var paths = JSONObject()
        var schemas: JSONObject = ["Response": Self.responseSchema]
        // Methods only a WebSocket carries (they act on the socket: provider registrations,
        // watches), listed so that they appear like any endpoint's.
        var webSocketOnly = JSONObject()
        for endpoint in self.endpoints {
            let definition = endpoint.definition
            if !definition.webSocketOnlyMethods.isEmpty {
                var entry: JSONObject = [
                    "title": .string(definition.title),
                    "methods": .array(definition.webSocketOnlyMethods.map(\.rawValue).sorted().map(JSONValue.string)),
                ]
                if let schema = definition.schema { entry["data"] = schema }
                webSocketOnly[definition.namespace.rawValue] = .object(entry)
            }
            var dataSchema: JSONValue = [:]
            var createSchema: JSONValue = [:]
            var patchSchema: JSONValue = ["type": "object"]
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
                createSchema = dataSchema
                storedSchema = dataSchema
                if definition.kind == .collection {
                    schemas[name + ".stored"] = Self.withServerFields(embedded)
                    storedSchema = ["$ref": .string("#/components/schemas/\(name).stored")]
                    schemas[name + ".create"] = Self.withServerFields(embedded, asSent: true)
                    createSchema = ["$ref": .string("#/components/schemas/\(name).create")]
                    schemas[name + ".patch"] = Self.mergePatch(of: embedded)
                    patchSchema = ["$ref": .string("#/components/schemas/\(name).patch")]
                }
            }
            if let result = definition.resultSchema {
                let name = Self.componentName(definition.namespace, taken: schemas) + ".result"
                schemas[name] = Self.rebasingReferences(result, under: "#/components/schemas/\(name)")
                storedSchema = ["$ref": .string("#/components/schemas/\(name)")]
            }
            let base = "/api/\(definition.application)/\(definition.namespace.rawValue)/"
            let collectionPath = self.operations(endpoint, dataSchema: createSchema, storedSchema: storedSchema, withObjectID: false)
            if !collectionPath.isEmpty { paths[base] = .object(collectionPath) }
            let itemData = definition.kind == .collection ? patchSchema : dataSchema
            var itemPath = self.operations(endpoint, dataSchema: itemData, storedSchema: storedSchema, withObjectID: true)
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
            "x-websocket-only": .object(webSocketOnly),
            "components": [
                "schemas": .object(schemas),
                "responses": ["Failure": ["description": "A failure envelope; the status line comes from errorcode.", "content": Self.content(["$ref": "#/components/schemas/Response"])]],
                // One credential per request (SPEC §6.4): each scheme is an alternative of its own.
                "securitySchemes": [
                    "flowToken": ["type": "apiKey", "in": "header", "name": "Flow-Auth-Token"],
                    "queryToken": ["type": "apiKey", "in": "query", "name": "token"],
                    "bearer": ["type": "http", "scheme": "bearer"],
                    "basic": ["type": "http", "scheme": "basic"],
                ],
            ],
        ]
    }

    /// The operations of one path: which verbs carry which of the endpoint's methods (SPEC §6.3).
    ///
    /// The document says exactly what is accepted, so that a generated client (or a fuzzer) sends
    /// nothing the gateway refuses for its shape: the namespace header can only name the path's
    /// namespace, the object id comes only from the path, each field has one source (the
    /// `Flow-Request-*` header; the query string works too but is left out, since two sources
    /// that disagree are `AMBIGUOUS_REQUEST`), a credential is one of the security schemes, and
    /// each body and `parameters` is described as the endpoint checks it.
    private func operations(_ endpoint: any Endpoint, dataSchema: JSONValue, storedSchema: JSONValue, withObjectID: Bool) -> JSONObject {
        let definition = endpoint.definition
        let methods = VerbTable.reachable(definition)
        var operations = JSONObject()
        for method in VerbTable.verbs {
            let verb = method.rawValue.lowercased()
            let carried = VerbTable.methods(of: method, withObjectID: withObjectID)
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
                    "Carries \(available.map(\.rawValue).joined(separator: ", ")) (choose with Flow-Request-Method"
                        + (primary == carried[0] ? "; default \(primary.rawValue))." : ", required: the verb's default, \(carried[0].rawValue), is not supported here).")
                        + " Each Flow-Request-* header may also be given as a query parameter (method, namespace, objectid, parameters, requestid) if it agrees with the header."
                ),
                "tags": [.string(definition.application)],
                "parameters": .array(Self.parameters(endpoint, methods: available, methodRequired: primary != carried[0])),
                "responses": .object(Self.responses(data: responseData)),
            ]
            if definition.kind == .collection, verb == "get", case .object(var responses) = operation["responses"],
                case .object(var success) = responses["200"], case .object(var content) = success["content"]
            {
                // The same GET with Accept: text/event-stream watches instead (SPEC §13.3).
                content["text/event-stream"] = ["schema": ["type": "string", "description": "id:/event:/data: lines; data is an event frame (SPEC §13.1)"]]
                success["content"] = .object(content)
                success["description"] = .string(
                    "Success envelope. With Accept: text/event-stream, the \(withObjectID ? "object's" : "collection's") live events instead:"
                        + " `id: <position>`, `event: created|updated|deleted|ended|overflow`, `data: <event frame>`; resume with Last-Event-ID"
                        + " (or ?since=<position>, e.g. paging.position of a LIST), filter with parameters.filter; a comment line every 15 s."
                )
                responses["200"] = .object(success)
                operation["responses"] = .object(responses)
            }
            if !definition.isPublic(primary) {
                operation["security"] = [["flowToken": []], ["queryToken": []], ["bearer": []], ["basic": []]]
            }
            if ["post", "put", "patch"].contains(verb) {
                operation["requestBody"] = [
                    "required": true,
                    "description": "JSON (an application/x-www-form-urlencoded body is also accepted, as an object of strings).",
                    "content": ["application/json": ["schema": Self.body(endpoint, method: primary, dataSchema: dataSchema)]],
                ]
            }
            if definition.binaryMethods.contains(primary) { Self.addBinary(to: &operation, hasBody: ["post", "put", "patch"].contains(verb)) }
            operations[verb] = .object(operation)
        }
        return operations
    }

    /// A method that takes or answers a file (`system/backup`, SPEC §10): `application/octet-stream`
    /// beside the JSON body, and as its success answer.
    static func addBinary(to operation: inout JSONObject, hasBody: Bool) {
        let binary: JSONValue = ["schema": ["type": "string", "format": "binary"]]
        if hasBody, case .object(var body) = operation["requestBody"], case .object(var content) = body["content"] {
            content["application/octet-stream"] = binary
            body["content"] = .object(content)
            body["description"] = "JSON, or the file itself as application/octet-stream."
            operation["requestBody"] = .object(body)
        }
        if case .object(var responses) = operation["responses"], case .object(var success) = responses["200"], case .object(var content) = success["content"] {
            content["application/octet-stream"] = binary
            success["content"] = .object(content)
            success["description"] = "Success envelope, or the file itself as application/octet-stream."
            responses["200"] = .object(success)
            operation["responses"] = .object(responses)
        }
    }

    /// What `method` takes as its body.
    static func body(_ endpoint: any Endpoint, method: FlowProtocol.Method, dataSchema: JSONValue) -> JSONValue {
        let definition = endpoint.definition
        guard definition.kind == .collection else {
            if method == .create || definition.methodSchemas[method] == nil { return dataSchema }
            return definition.schema(for: method) ?? [:]
        }
        // CREATE's schema (the `.create` component) allows the server fields beside the object's
        // own; UPDATE's (`.patch`) is a merge patch of them.
        return ["type": "object", "allOf": [dataSchema]]
    }

    /// What a JSON merge patch (RFC 7386) of an object of `schema` may hold so that the merged
    /// object still matches: each property as the schema says, or null to remove it unless it is
    /// required; other properties as the schema allows them; the server fields (ignored). Other
    /// top-level keywords of the schema are checked on the merged object only.
    static func mergePatch(of schema: JSONValue) -> JSONValue {
        guard case .object(let object) = schema, case .object(let properties)? = object["properties"] else {
            return ["type": "object", "description": "A JSON merge patch (RFC 7386) of the object; the result is checked against the schema."]
        }
        let required = Set(object["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        let orNull: (JSONValue) -> JSONValue = { ["anyOf": [$0, ["type": "null"]]] }
        var patch: JSONObject = [
            "type": "object", "description": "A JSON merge patch (RFC 7386) of the object: null removes a property.",
        ]
        var patched = properties.mapValues(orNull)
        for name in required where properties[name] != nil { patched[name] = properties[name] }
        for field in ["id", "created", "updated", "rev"] { patched[field] = [:] }
        patch["properties"] = .object(patched)
        if let additional = object["additionalProperties"] { patch["additionalProperties"] = additional == .bool(false) ? additional : orNull(additional) }
        if case .object(let patterns)? = object["patternProperties"] { patch["patternProperties"] = .object(patterns.mapValues(orNull)) }
        return .object(patch)
    }

    /// The parameters of an operation carrying `methods`.
    static func parameters(_ endpoint: any Endpoint, methods: [FlowProtocol.Method], methodRequired: Bool) -> [JSONValue] {
        let definition = endpoint.definition
        var parameters: [JSONValue] = [
            // An empty header is no header (SPEC §2).
            [
                "name": "Flow-Request-Method", "in": "header", "required": .bool(methodRequired),
                "description": "The method; the verb's default when absent or empty.",
                "schema": ["enum": .array(methods.map { .string($0.rawValue) } + (methodRequired ? [] : [""]))],
            ],
            [
                "name": "Flow-Request-Namespace", "in": "header", "required": false,
                "description": "The namespace; it can only be the path's.", "schema": ["enum": [.string(definition.namespace.rawValue), ""]],
            ],
            [
                "name": "Flow-Request-Id", "in": "header", "required": false,
                "description": "Echoed in the response and its Flow-Request-Id header.", "schema": ["type": "string", "maxLength": 128],
            ],
        ]
        // One schema must hold for every method the operation carries: documented only then.
        let schemas = methods.map { endpoint.parametersSchema(for: $0) }
        if let first = schemas.first, let schema = first, schemas.allSatisfy({ $0 == schema }) {
            var parameter: JSONObject = [
                "name": "Flow-Request-Parameters", "in": "header", "required": false, "description": "Method options (SPEC §7.2).",
            ]
            if schema == .bool(true) {
                parameter["schema"] = ["type": "string"]
            } else {
                parameter["content"] = ["application/json": ["schema": schema]]
            }
            parameters.append(.object(parameter))
        }
        return parameters
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

    /// A collection object as stored: its own schema plus the server fields. `asSent`: as a
    /// CREATE may send it, where the store sets the server fields (ignoring what is sent) but
    /// an `id` may be chosen.
    static func withServerFields(_ schema: JSONValue, asSent: Bool = false) -> JSONValue {
        guard case .object(var object) = schema else { return schema }
        var properties = object["properties"]?.objectValue ?? [:]
        for field in ["id", "created", "updated", "rev"] {
            properties[field] = asSent ? [:] : ["type": "string", "readOnly": true]
        }
        if asSent { properties["id"] = ["anyOf": [Self.objectIDSchema, ["type": "null"]]] }
        object["properties"] = .object(properties)
        return .object(object)
    }

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
            "paging": ["type": "object", "properties": ["next": ["type": "string"], "total": ["type": "integer"], "position": ["type": "string"]]],
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
