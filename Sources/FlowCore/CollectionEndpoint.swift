public import FlowProtocol
import Foundation

/// A collection declared in `Endpoints/` (SPEC §7): JSON objects stored by a ``CollectionStore``,
/// validated by the collection's schema, searchable over its declared fields.
public struct CollectionEndpoint: Endpoint {
    public let definition: EndpointDefinition
    /// What the store is told about the collection.
    public let spec: CollectionSpec
    let store: any CollectionStore
    let validator: (any DataValidator)?
    let limits: ListLimits

    /// `definition.methods` must not include RUN (collections cannot run anything). With
    /// `indexes`, the store must have been told of them (``CollectionStore/declareIndexes(_:)``,
    /// as the gateway does at start) before the first LIST: SQLite's LIST names them.
    public init(
        definition: EndpointDefinition, searchFields: [String], indexes: [[String]] = [], store: any CollectionStore, validator: (any DataValidator)?,
        limits: ListLimits = .init()
    ) {
        self.definition = definition
        self.spec = CollectionSpec(name: definition.namespace.rawValue, searchFields: searchFields, indexes: indexes)
        self.store = store
        self.validator = validator
        self.limits = limits
    }

    public func handle(_ call: Call, context: CallContext) async throws -> Reply {
        switch call.method {
        case .list:
            let page = try await self.store.list(self.spec, query: try Self.listQuery(call.parameters, limits: self.limits))
            var paging = JSONObject()
            if let next = page.next { paging["next"] = .string(next) }
            if let total = page.total { paging["total"] = .integer(Int64(total)) }
            if let position = page.position { paging["position"] = .string(position.description) }
            return Reply(payload: .encoded(page.encodedArray), paging: .object(paging))
        case .open:
            return Reply(payload: .encoded(try await self.existing(call.objectid!)))
        case .index:
            let object = try decodeStoredObject(try await self.existing(call.objectid!))
            var fields = JSONObject()
            for field in self.spec.searchFields { fields[field] = object[field] ?? .null }
            return Reply(data: ["id": object["id"] ?? .null, "rev": object["rev"] ?? .null, "updated": object["updated"] ?? .null, "fields": .object(fields)])
        case .create:
            // The dispatcher checked the data against the schema (``validator(for:)``).
            var fields = try Self.objectData(call.data)
            let id: String
            switch fields["id"] {
            case nil, .null?: id = UUID().uuidString.lowercased()
            case .string(let given)? where ObjectID.isValid(given): id = given
            default: throw FlowError.validationFailed([DataProblem(path: "/id", message: "must be a string of 1-200 characters without control characters or '/'")])
            }
            fields = Self.withoutServerFields(fields)
            return Reply(data: .object(try await self.store.insert(self.spec, id: id, fields: fields)))
        case .update:
            let patch = Self.withoutServerFields(try Self.objectData(call.data))
            return Reply(data: .object(try await self.update(call.objectid!, patch: patch, expectedRev: try Self.expectedRev(call.parameters))))
        case .delete:
            return Reply(data: .object(try await self.store.delete(self.spec, id: call.objectid!, expectedRev: try Self.expectedRev(call.parameters))))
        case .run:
            throw FlowError(.methodNotAllowed, "Collections do not support RUN")
        }
    }

    /// How many times an UPDATE without `rev` merges again when another write came between its
    /// read and its write, before it answers `CONFLICT`.
    static let updateAttempts = 8

    /// SPEC §7.2–7.3: merges `patch` onto the stored object, validates the result outside any
    /// transaction (SPEC §11), then writes it if the object's rev is still the one merged onto.
    /// With the caller's `rev`, a change in between is `CONFLICT`; without, it merges again.
    private func update(_ id: String, patch: JSONObject, expectedRev: String?) async throws -> JSONObject {
        var lastConflict: (any Error)?
        for _ in 0..<Self.updateAttempts {
            let current = try decodeStoredObject(try await self.existing(id))
            guard case .string(let rev)? = current["rev"] else { throw FlowError(.internalError, "Stored object has no rev") }
            if let expectedRev, expectedRev != rev {
                throw FlowError(.conflict, "The object changed since revision \(expectedRev.prefix(40)); the current object is in data", data: .object(current))
            }
            let merged = Self.withoutServerFields(current).mergePatched(with: patch)
            try self.validator?.check(.object(merged))
            do {
                return try await self.store.replace(self.spec, id: id, expectedRev: rev, fields: merged)
            } catch let error as FlowError where error.code == .conflict && expectedRev == nil {
                lastConflict = error
            }
        }
        throw lastConflict ?? FlowError(.conflict, "The object kept changing; try again")
    }

    /// CREATE's data is checked against the schema without the server fields (the store sets them).
    public func validator(for method: Method) -> (any DataValidator)? {
        guard method == .create, let validator = self.validator else { return nil }
        return StoredFieldsValidator(schema: validator)
    }

    /// SPEC §7.2–7.3's parameters, exactly as ``listQuery(_:limits:)`` and ``expectedRev(_:)`` read
    /// them (a `cursor` only ever comes from `paging.next`, so it is left out).
    public func parametersSchema(for method: Method) -> JSONValue? {
        let field: JSONValue = ["type": "string", "pattern": .string(Self.fieldNamePattern)]
        switch method {
        case .list:
            return [
                "type": "object", "additionalProperties": false,
                "properties": [
                    "limit": ["type": ["integer", "null"], "minimum": 1, "maximum": .integer(Int64(ListQuery.maxLimit))],
                    "sort": ["anyOf": [field, ["type": "null"]]],
                    "order": ["enum": ["asc", "desc", .null]],
                    "filter": [
                        "type": ["object", "null"], "maxProperties": .integer(Int64(self.limits.maxFilterFields)), "propertyNames": field,
                        "additionalProperties": ["type": ["string", "number", "boolean", "null"]],
                    ],
                    "search": [
                        "type": ["string", "null"], "maxLength": .integer(Int64(self.limits.maxSearchLength)),
                        "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
                    ],
                ],
            ]
        case .update, .delete:
            return ["type": "object", "additionalProperties": false, "properties": ["rev": ["type": ["string", "null"]]]]
        default:
            return nil
        }
    }

    /// The stored object's JSON text.
    private func existing(_ id: String) async throws -> String {
        guard let object = try await self.store.encodedObject(self.spec, id: id) else {
            throw FlowError(.doNotExist, "Object does not exist")
        }
        return object
    }

    static func objectData(_ data: JSONValue?) throws(FlowError) -> JSONObject {
        guard case .object(let object)? = data else {
            throw FlowError(.invalidRequest, "A collection stores JSON objects: 'data' must be an object, not \(data?.typeName ?? "missing")")
        }
        return object
    }

    static func withoutServerFields(_ object: JSONObject) -> JSONObject {
        object.filter { !ServerFields.all.contains($0.key) }
    }

    /// `parameters.rev` (or HTTP `If-Match`), when given.
    static func expectedRev(_ parameters: JSONValue?) throws(FlowError) -> String? {
        switch parameters?["rev"] {
        case nil, .null?: return nil
        case .string(let rev)?: return rev
        case let other?: throw FlowError(.invalidRequest, "Parameter 'rev' must be a string, not \(other.typeName)")
        }
    }

    /// SPEC §7.2's LIST parameters: `limit`, `cursor`, `sort`, `order`, `filter`, `search`,
    /// within `limits` (SPEC §11: `INVALID_REQUEST` past them).
    public static func listQuery(_ parameters: JSONValue?, limits: ListLimits) throws(FlowError) -> ListQuery {
        var query = ListQuery()
        guard let parameters else { return query }
        guard case .object(let object) = parameters else {
            throw FlowError(.invalidRequest, "LIST parameters must be an object such as {\"limit\": 10}")
        }
        switch object["limit"] {
        case nil, .null?: break
        case .integer(let limit)? where (1...Int64(ListQuery.maxLimit)).contains(limit): query.limit = Int(limit)
        default: throw FlowError(.invalidRequest, "Parameter 'limit' must be an integer from 1 to \(ListQuery.maxLimit)")
        }
        switch object["cursor"] {
        case nil, .null?: break
        case .string(let cursor)? where cursor.utf8.count <= ListLimits.maxCursorLength: query.cursor = cursor
        default: throw FlowError(.invalidRequest, "Parameter 'cursor' must be the string from paging.next")
        }
        switch object["sort"] {
        case nil, .null?: break
        case .string(let field)? where Self.isFieldName(field): query.sort = field
        default: throw FlowError(.invalidRequest, "Parameter 'sort' must name a top-level field")
        }
        switch object["order"] {
        case nil, .null?, "asc"?: break
        case "desc"?: query.descending = true
        default: throw FlowError(.invalidRequest, "Parameter 'order' must be \"asc\" or \"desc\"")
        }
        switch object["filter"] {
        case nil, .null?: break
        case .object(let filter)?:
            guard filter.count <= limits.maxFilterFields else {
                throw FlowError(.invalidRequest, "Parameter 'filter' may name at most \(limits.maxFilterFields) fields")
            }
            for (field, value) in filter {
                guard Self.isFieldName(field) else { throw FlowError(.invalidRequest, "Filter field '\(field.prefix(40))' must name a top-level field") }
                switch value {
                case .array, .object: throw FlowError(.invalidRequest, "Filter value of '\(field)' must be a string, number, boolean or null")
                default: query.filter[field] = value
                }
            }
        default: throw FlowError(.invalidRequest, "Parameter 'filter' must be an object of field: value")
        }
        switch object["search"] {
        case nil, .null?: break
        case .string(let text)?:
            guard text.unicodeScalars.count <= limits.maxSearchLength else {
                throw FlowError(.invalidRequest, "Parameter 'search' must be at most \(limits.maxSearchLength) characters")
            }
            guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw FlowError(.invalidRequest, "Parameter 'search' must not contain control characters")
            }
            query.search = text.isEmpty ? nil : text
        default: throw FlowError(.invalidRequest, "Parameter 'search' must be a string")
        }
        return query
    }

    /// A top-level field name usable in sort and filter: 1 to 64 characters, no `"` and no
    /// control character (the store quotes it in a JSON path, where `"` cannot be escaped).
    public static func isFieldName(_ name: String) -> Bool {
        let count = name.unicodeScalars.count
        return count >= 1 && count <= 64 && !name.unicodeScalars.contains { $0 == "\"" || $0.value < 0x20 || $0.value == 0x7F }
    }

    /// ``isFieldName(_:)`` as a JSON Schema pattern, for the OpenAPI document.
    public static let fieldNamePattern = "^[^\"\\u0000-\\u001f\\u007f]{1,64}$"
}

/// A collection's CREATE check: `data` must be an object (`INVALID_REQUEST` otherwise, as for a
/// collection without a schema), and its fields other than the server fields match the schema.
struct StoredFieldsValidator: DataValidator {
    let schema: any DataValidator

    func problems(with data: JSONValue) -> [DataProblem] {
        guard case .object(let fields) = data else { return self.schema.problems(with: data) }
        return self.schema.problems(with: .object(CollectionEndpoint.withoutServerFields(fields)))
    }

    func check(_ data: JSONValue) throws(FlowError) {
        let fields = try CollectionEndpoint.objectData(data)
        try self.schema.check(.object(CollectionEndpoint.withoutServerFields(fields)))
    }
}
