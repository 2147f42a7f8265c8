import FlowProtocol
import FlowSchema
import Testing

/// SPEC §11: a schema is bounded work — cycles refused where they enter, evaluation linear in
/// the instance for every keyword, and a budget for what a schema multiplies.
@Suite struct BoundedWorkTests {
    @Test func referenceCyclesThatNeverDescendAreRefused() throws {
        let cycles: [(JSONValue, String)] = [
            (["$ref": "#"], "/$ref"),
            (["$defs": ["a": ["$ref": "#/$defs/a"]], "properties": ["x": ["$ref": "#/$defs/a"]]], "/$defs/a/$ref"),
            (["$defs": ["a": ["allOf": [["$ref": "#/$defs/b"]]], "b": ["anyOf": [["not": ["$ref": "#/$defs/a"]]]]], "$ref": "#/$defs/a"], ""),
            (["$defs": ["a": ["if": ["$ref": "#"]]], "$ref": "#/$defs/a"], ""),
            (["dependentSchemas": ["k": ["$ref": "#"]]], "/dependentSchemas/k/$ref"),
            (["$id": "https://example.com/s", "$defs": ["x": ["$anchor": "x", "oneOf": [["$ref": "#x"]]]], "$ref": "#x"], ""),
        ]
        for (schema, location) in cycles {
            do {
                _ = try JSONSchema(schema)
                Issue.record("accepted the cycle \(schema)")
            } catch {
                #expect(error.kind == .referenceCycle, "\(schema)")
                #expect(error.keyword == "$ref")
                if !location.isEmpty { #expect(error.location == location, "\(schema)") }
                #expect(error.location.hasSuffix("$ref"))
            }
        }
    }

    @Test func recursionThatStepsIntoTheDataIsAccepted() throws {
        let list: JSONValue = ["$defs": ["node": ["type": "object", "properties": ["next": ["$ref": "#/$defs/node"]]]], "$ref": "#/$defs/node"]
        let schema = try JSONSchema(list)
        var value: JSONValue = ["next": ["next": ["next": .object([:])]]]
        #expect(schema.isValid(value))
        value = ["next": ["next": 3]]
        #expect(schema.validate(value).map(\.path) == ["/next/next"])
        _ = try JSONSchema(["items": ["$ref": "#"], "propertyNames": ["$ref": "#"], "additionalProperties": ["$ref": "#"]])
    }

    @Test func longReferenceChainsCompileWithoutRecursionAndAreBounded() throws {
        // 200 definitions, each referring to the next: compiled by a loop, evaluated 200 deep.
        var defs = JSONObject()
        for index in 0..<200 { defs["d\(index)"] = ["$ref": .string("#/$defs/d\(index + 1)")] }
        defs["d200"] = ["type": "integer"]
        let chain = try JSONSchema(["$defs": .object(defs), "$ref": "#/$defs/d0"])
        #expect(chain.isValid(3))
        #expect(!chain.isValid("3"))
        // 5,000 of them is refused at compile time, not a stack overflow at run time.
        var long = JSONObject()
        for index in 0..<5000 { long["d\(index)"] = ["$ref": .string("#/$defs/d\(index + 1)")] }
        long["d5000"] = true
        #expect(throws: SchemaError.self) { try JSONSchema(["$defs": .object(long), "$ref": "#/$defs/d0"]) }
    }

    @Test func uniqueItemsIsLinear() throws {
        let schema = try JSONSchema(["uniqueItems": true])
        let distinct = JSONValue.array((0..<80_000).map { .string("s\($0)") })
        // 80,000 items in well under a million steps: hashed, not compared pairwise (3.2 billion pairs).
        let bounded = try JSONSchema(["uniqueItems": true], workLimit: 1_000_000)
        #expect(bounded.validate(distinct).isEmpty)
        var repeated = (0..<80_000).map { JSONValue.string("s\($0)") }
        repeated.append("s17")
        #expect(schema.validate(.array(repeated)) == [ValidationError(path: "", message: "must not repeat items (17 and 80000 are equal)")])
        // Equality as JSON Schema means it: numbers by value, objects in any key order.
        #expect(!schema.isValid([1, 1.0]))
        #expect(!schema.isValid([["a": 1, "b": [2.0]], ["b": [2], "a": 1.0]]))
        #expect(schema.isValid([1, true, "1", [1], ["1": 1], .null]))
        #expect(schema.isValid([1_152_921_504_606_846_977, 1_152_921_504_606_846_976]))
        // Large integers that collapse to one double are distinct, and cost no pairwise work.
        let big = JSONValue.array((0..<20_000).map { .integer(1 << 62 + Int64($0)) })
        #expect(bounded.validate(big).isEmpty)
    }

    @Test func enumIsHashed() throws {
        let values = (0..<5_000).map { JSONValue.string("v\($0)") }
        let schema = try JSONSchema(["items": ["enum": .array(values)]], workLimit: 500_000)
        // 20,000 lookups in a 5,000-value enum: constant work each.
        #expect(schema.validate(.array((0..<20_000).map { .string("v\($0 % 5_000)") })).isEmpty)
        #expect(schema.validate(["v1", "w"]).map(\.path) == ["/1"])
        #expect(try JSONSchema(["enum": [1, ["a": 2]]]).isValid(["a": 2.0]))
    }

    @Test func aSchemaThatMultipliesWorkRunsOutOfBudget() throws {
        // Each level doubles the work on the same value: 2^40 evaluations without a budget.
        var defs = JSONObject()
        for index in 0..<40 { defs["d\(index)"] = ["allOf": [["$ref": .string("#/$defs/d\(index + 1)")], ["$ref": .string("#/$defs/d\(index + 1)")]]] }
        defs["d40"] = ["type": "integer"]
        let schema = try JSONSchema(["$defs": .object(defs), "$ref": "#/$defs/d0"])
        #expect(schema.validate(1) == [JSONSchema.tooComplex])
        #expect(!schema.isValid(1))
        // The same shape with 8 levels is cheap and checks normally.
        var small = JSONObject()
        for index in 0..<8 { small["d\(index)"] = ["allOf": [["$ref": .string("#/$defs/d\(index + 1)")], ["$ref": .string("#/$defs/d\(index + 1)")]]] }
        small["d8"] = ["type": "integer"]
        let cheap = try JSONSchema(["$defs": .object(small), "$ref": "#/$defs/d0"])
        #expect(cheap.isValid(1))
        #expect(!cheap.isValid("1"))
    }

    @Test func errorsAreCapped() throws {
        let schema = try JSONSchema(["items": ["type": "integer"]])
        let errors = schema.validate(.array((0..<10_000).map { .string("\($0)") }))
        #expect(errors.count == JSONSchema.maxErrors)
        #expect(errors.first?.path == "/0")
    }
}
