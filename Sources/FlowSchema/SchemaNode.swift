import FlowProtocol

/// One compiled schema: `false`, or a list of keyword checks. Subschemas are indices into
/// ``JSONSchema/nodes``, so recursive schemas need no reference cycles.
struct SchemaNode: Sendable {
    var alwaysFails = false
    var keywords: [Keyword] = []
}

/// The JSON types of the `type` keyword.
enum JSONType: String, Sendable, CaseIterable {
    case null, boolean, object, array, number, string, integer

    func matches(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.null, .null), (.boolean, .bool), (.object, .object), (.array, .array), (.string, .string): true
        case (.number, .integer), (.number, .number), (.integer, .integer): true
        case (.integer, .number(let number)): number.rounded(.towardZero) == number
        default: false
        }
    }
}

/// One keyword's check.
enum Keyword: Sendable {
    case types(Set<JSONType>)
    case enumeration(ValueSet)
    /// The value, and how many values it holds (what comparing with it may cost).
    case constant(JSONValue, cost: Int)
    case minimum(Double, exclusive: Bool)
    case maximum(Double, exclusive: Bool)
    case multipleOf(Double)
    case minLength(Int)
    case maxLength(Int)
    case pattern(Pattern)
    case format(String)
    case minItems(Int)
    case maxItems(Int)
    case uniqueItems
    case prefixItems([Int])
    case items(Int, from: Int)
    case contains(Int, min: Int, max: Int?)
    case minProperties(Int)
    case maxProperties(Int)
    case required([String])
    case dependentRequired([(String, [String])])
    case properties([(String, Int)])
    case patternProperties([(Pattern, Int)])
    case additionalProperties(Int, known: Set<String>, patterns: [Pattern])
    case propertyNames(Int)
    case dependentSchemas([(String, Int)])
    case allOf([Int])
    case anyOf([Int])
    case oneOf([Int])
    case not(Int)
    case conditional(if: Int, then: Int?, else: Int?)
    case reference(Int)
    case unevaluatedItems(Int)
    case unevaluatedProperties(Int)

    /// `unevaluated*` must see the annotations of every other keyword of the same schema.
    var runsLast: Bool {
        switch self {
        case .unevaluatedItems, .unevaluatedProperties: true
        default: false
        }
    }
}
