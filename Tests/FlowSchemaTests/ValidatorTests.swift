import FlowProtocol
import FlowSchema
import Testing

@Suite struct ValidatorTests {
    static let device: JSONValue = [
        "type": "object",
        "required": ["name", "serial"],
        "additionalProperties": false,
        "properties": [
            "id": ["type": "string"],
            "name": ["type": "string", "minLength": 1, "maxLength": 10],
            "serial": ["type": "string", "pattern": "^[A-Z0-9-]+$"],
            "ports": ["type": "integer", "minimum": 1, "maximum": 96],
            "tags": ["type": "array", "items": ["type": "string"], "uniqueItems": true],
            "uplinks": ["type": "array", "items": ["$ref": "#/$defs/uplink"]],
        ],
        "$defs": ["uplink": ["type": "object", "required": ["port"], "properties": ["port": ["type": "integer"]]]],
    ]

    @Test func errorsCarryJSONPointerPathsAndReadableMessages() throws {
        let schema = try JSONSchema(Self.device)
        #expect(schema.validate(["name": "core", "serial": "SN-1", "ports": 48]).isEmpty)
        let errors = schema.validate([
            "name": "", "ports": 100, "tags": ["a", "a"], "uplinks": [["port": "x"], [:]], "colour": "red", "serial": "bad serial",
        ])
        #expect(Set(errors.map(\.path)) == ["/name", "/ports", "/tags", "/uplinks/0/port", "/uplinks/1/port", "/colour", "/serial"])
        #expect(errors.contains(ValidationError(path: "/name", message: "must be at least 1 characters long")))
        #expect(errors.contains(ValidationError(path: "/ports", message: "must be at most 96")))
        #expect(errors.contains(ValidationError(path: "/uplinks/1/port", message: "is required")))
        #expect(errors.contains(ValidationError(path: "/colour", message: "is not allowed here")))
        #expect(schema.validate(["serial": "SN"]) == [ValidationError(path: "/name", message: "is required")])
        #expect(schema.validate("text") == [ValidationError(path: "", message: "must be object, not string")])
        #expect(ValidationError(path: "/a~1b", message: "m").jsonValue == ["path": "/a~1b", "message": "m"])
        #expect(try JSONSchema(["properties": ["a/b": ["type": "integer"]]]).validate(["a/b": "x"]).first?.path == "/a~1b")
    }

    @Test func refusesWhatItCannotCheck() {
        #expect(throws: SchemaError.self) { try JSONSchema(["$dynamicRef": "#meta"]) }
        do {
            _ = try JSONSchema(["properties": ["a": ["$dynamicRef": "#x"]]])
            Issue.record("accepted $dynamicRef")
        } catch {
            #expect(error.kind == .unsupportedKeyword)
            #expect(error.keyword == "$dynamicRef")
            #expect(error.location == "/properties/a/$dynamicRef")
        }
        do {
            _ = try JSONSchema(["$ref": "https://example.com/other.json"])
            Issue.record("accepted a remote $ref")
        } catch {
            #expect(error.kind == .externalReference)
        }
        do {
            _ = try JSONSchema(["properties": ["n": ["minLength": "three"]]])
            Issue.record("accepted a bad minLength")
        } catch {
            #expect(error.kind == .invalidKeyword)
            #expect(error.description == "/properties/n/minLength: 'minLength' must be a non-negative integer")
        }
        #expect(throws: SchemaError.self) { try JSONSchema(["type": "text"]) }
        #expect(throws: SchemaError.self) { try JSONSchema(["pattern": "(unclosed"]) }
        #expect(throws: SchemaError.self) { try JSONSchema(["$ref": "#/$defs/missing"]) }
        #expect(throws: SchemaError.self) { try JSONSchema(.integer(3)) }
    }

    @Test func formatsAreAnnotationsUnlessAsserted() throws {
        let schema: JSONValue = ["properties": ["at": ["format": "date-time"], "id": ["format": "uuid"], "mail": ["format": "email"]]]
        let bad: JSONValue = ["at": "2024-02-30T10:00:00Z", "id": "not-a-uuid", "mail": "nobody"]
        #expect(try JSONSchema(schema).isValid(bad))
        let asserting = try JSONSchema(schema, assertFormats: true)
        #expect(Set(asserting.validate(bad).map(\.path)) == ["/at", "/id", "/mail"])
        #expect(asserting.isValid(["at": "2024-02-29T23:59:60.5+01:00", "id": "3a472a78-4e3e-4858-8acc-eb754f9d1328", "mail": "a@b.example"]))
    }

    @Test func recursiveSchemasTerminate() throws {
        let tree: JSONValue = [
            "$id": "https://example.com/tree", "type": "object",
            "properties": ["children": ["type": "array", "items": ["$ref": "tree"]], "name": ["type": "string"]],
        ]
        let schema = try JSONSchema(tree)
        #expect(schema.isValid(["name": "a", "children": [["name": "b", "children": []]]]))
        #expect(schema.validate(["children": [["name": 1]]]).map(\.path) == ["/children/0/name"])
    }
}
