public import FlowProtocol
import Foundation

/// Storage for collections (SPEC §7): JSON objects with server fields `id`, `created`,
/// `updated` and `rev`. SQLite is the embedded backend; another (PostgreSQL, SPEC §12) is a
/// new conformance, not a change to the endpoints.
///
/// Every write is committed before it returns (SPEC §7.4), and a write with an expected `rev`
/// checks and writes in one transaction (SPEC §7.3).
public protocol CollectionStore: Sendable {
    /// One page of a collection.
    func list(_ collection: CollectionSpec, query: ListQuery) async throws -> ListPage
    /// The JSON text of the object with `id` as stored, or nil.
    func encodedObject(_ collection: CollectionSpec, id: String) async throws -> String?
    /// Stores a new object (server fields are set by the store). `ALREADY_EXISTS` when `id` is taken.
    func insert(_ collection: CollectionSpec, id: String, fields: JSONObject) async throws -> JSONObject
    /// Replaces the fields of the object whose rev is still `expectedRev` (SPEC §7.3), keeping
    /// `created`. `DO_NOT_EXIST` when missing; `CONFLICT` (with the current object) when its rev
    /// changed. The caller merges and validates first: no caller work runs inside the write.
    func replace(_ collection: CollectionSpec, id: String, expectedRev: String, fields: JSONObject) async throws -> JSONObject
    /// Deletes an object and returns it, with the same `DO_NOT_EXIST` / `CONFLICT` rules.
    func delete(_ collection: CollectionSpec, id: String, expectedRev: String?) async throws -> JSONObject
    /// Makes the store's indexes the ones `collections` declare (``CollectionSpec/indexes``):
    /// builds the missing ones and drops those no collection declares any more. Called at start,
    /// before the first call; returns what it changed, for the log.
    func declareIndexes(_ collections: [CollectionSpec]) async throws -> IndexChanges
}

extension CollectionStore {
    /// A store without indexes of its own to keep.
    public func declareIndexes(_ collections: [CollectionSpec]) async throws -> IndexChanges { IndexChanges() }
}

/// What ``CollectionStore/declareIndexes(_:)`` built and dropped: each index as its fields.
public struct IndexChanges: Sendable, Equatable {
    public var built: [[String]]
    public var dropped: [String]

    public init(built: [[String]] = [], dropped: [String] = []) {
        self.built = built
        self.dropped = dropped
    }
}

/// How every store shapes what it keeps of an object (SPEC §7.3), so that both stores answer
/// the same bytes: the server fields first, then the object's own.
public enum StoredObject {
    /// Server fields first (id, created, updated, rev), then the object's own fields.
    public static func make(_ fields: JSONObject, id: String, created: String, updated: String, rev: String) -> JSONObject {
        var object: JSONObject = ["id": .string(id), "created": .string(created), "updated": .string(updated), "rev": .string(rev)]
        for (key, value) in fields where !ServerFields.all.contains(key) { object[key] = value }
        return object
    }

    /// The object's text as stored and answered (compact JSON, in field order).
    public static func text(_ object: JSONObject) -> String {
        String(decoding: JSONValue.object(object).encoded(), as: UTF8.self)
    }

    /// `created` and `updated`: ISO 8601, UTC, with milliseconds.
    public static func timestamp() -> String {
        Date.now.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// The text full-text search sees of an object: its search fields' values, strings as they
    /// are, arrays item by item, other values as JSON.
    public static func searchText(_ object: JSONObject, fields: [String]) -> String {
        fields.compactMap { object[$0].map(Self.searchText) }.joined(separator: " ")
    }

    static func searchText(_ value: JSONValue) -> String {
        switch value {
        case .string(let string): string
        case .null: ""
        case .array(let items): items.map(Self.searchText).joined(separator: " ")
        default: value.description
        }
    }

    /// A new `rev`: random, short, base 36.
    public static func newRev() -> String {
        String(UInt64.random(in: 1 << 48..<1 << 52), radix: 36)
    }
}

/// A stored object's text as an object; anything else means the store is damaged.
public func decodeStoredObject(_ text: String) throws -> JSONObject {
    guard case .object(let object)? = try? JSONValue(parsing: text, maxDepth: 512) else {
        throw FlowError(.internalError, "Stored object is not a JSON object")
    }
    return object
}

/// What a store needs to know about a collection.
public struct CollectionSpec: Sendable, Hashable {
    /// The collection's key in storage: its namespace.
    public var name: String
    /// Top-level fields indexed for full-text `search`.
    public var searchFields: [String]
    /// Declared indexes (`indexes` in the definition): each the fields, in order, that a LIST's
    /// filter (equality) and then its sort use. The store keeps one index per entry. Fixed at
    /// init, as ``indexedFields`` is derived from it.
    public let indexes: [[String]]
    /// Every field named by an index: the store writes these as literal expressions (which an
    /// index can match) instead of bound parameters.
    public let indexedFields: Set<String>

    public init(name: String, searchFields: [String] = [], indexes: [[String]] = []) {
        self.name = name
        self.searchFields = searchFields
        self.indexes = indexes
        self.indexedFields = Set(indexes.joined())
    }

    /// At most this many indexes per collection, of at most ``maxIndexFields`` fields each: every
    /// index costs every write to the collection.
    public static let maxIndexes = 8
    public static let maxIndexFields = 4
}

/// What one LIST may ask for (SPEC §11): each bound keeps a query within what the store answers
/// quickly and within SQLite's own limits.
public struct ListLimits: Sendable, Equatable {
    /// `filter` fields at most (`max_filter_fields`).
    public var maxFilterFields: Int
    /// Characters of `search` at most (`max_search_length`).
    public var maxSearchLength: Int
    /// The longest `cursor` that a page can have produced (a sort key of a short value).
    public static let maxCursorLength = 4096

    public init(maxFilterFields: Int = 16, maxSearchLength: Int = 256) {
        self.maxFilterFields = maxFilterFields
        self.maxSearchLength = maxSearchLength
    }
}

/// LIST parameters (SPEC §7.2).
public struct ListQuery: Sendable, Equatable {
    public static let defaultLimit = 100
    public static let maxLimit = 1000

    public var limit: Int
    /// An opaque cursor from a previous page's `paging.next`.
    public var cursor: String?
    /// A top-level field (or `id`, `created`, `updated`); nil for insertion order.
    public var sort: String?
    public var descending: Bool
    /// Top-level field equals value, all of them.
    public var filter: [String: JSONValue]
    /// Full-text search over the collection's search fields.
    public var search: String?

    public init(limit: Int = ListQuery.defaultLimit, cursor: String? = nil, sort: String? = nil, descending: Bool = false, filter: [String: JSONValue] = [:], search: String? = nil) {
        self.limit = limit
        self.cursor = cursor
        self.sort = sort
        self.descending = descending
        self.filter = filter
        self.search = search
    }
}

/// One page of a LIST.
public struct ListPage: Sendable {
    /// The objects' JSON text as stored.
    public var encodedObjects: [String]
    /// The cursor of the next page; nil on the last one.
    public var next: String?
    /// How many objects match in all, when it was cheap to know (the first page).
    public var total: Int?
    /// The change-log position the rows reflect, read in the same snapshot (SPEC §13.1): a
    /// watch `since` it misses nothing and repeats nothing. Nil for a store without a change log.
    public var position: FeedPosition?

    /// The objects as one JSON array text, without decoding them.
    public var encodedArray: String {
        "[" + self.encodedObjects.joined(separator: ",") + "]"
    }

    public init(encodedObjects: [String], next: String?, total: Int?) {
        self.encodedObjects = encodedObjects
        self.next = next
        self.total = total
    }
}

/// The server fields of a stored object; clients may not set them.
public enum ServerFields {
    public static let all: Set<String> = ["id", "created", "updated", "rev"]
}
