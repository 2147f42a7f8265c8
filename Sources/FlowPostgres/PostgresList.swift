import FlowCore
import FlowProtocol
import Foundation
import PostgresNIO

/// One LIST as PostgreSQL SQL, with the SQLite store's semantics to the row: the same filters,
/// the same order, the same keyset paging and cursor text (SPEC §7.2).
///
/// SQLite orders a field's values by type first (numbers, booleans counted as 0 and 1, before
/// text, before a missing or null value) and text by its bytes. `jsonb` has an order of its
/// own (strings before numbers, null first), so the sort key here is spelled as three columns
/// that reproduce SQLite's: a rank (0 number or boolean, 1 text, 2 missing or null), the
/// number, the text in byte order (`COLLATE "C"`). The page is `limit + 1` rows after the
/// cursor's (rank, number, text, seq), the extra one saying whether there is a next page.
struct PostgresList {
    let collection: CollectionSpec
    let query: ListQuery
    /// The query's search, read once: the statement and the page's `total` both need it.
    let search: PostgresSearch.Match

    init(collection: CollectionSpec, query: ListQuery) {
        self.collection = collection
        self.query = query
        self.search = query.search.map(PostgresSearch.match) ?? .everything
    }

    /// The page's statement.
    func statement() throws(FlowError) -> PostgresQuery {
        var sql = Statement()
        let collection = sql.bind(self.collection.name)
        var conditions = ["collection = \(collection)"]
        for (field, value) in self.query.filter.sorted(by: { $0.key < $1.key }) {
            conditions.append(Self.condition(field: sql.bind(field), value: value, in: &sql))
        }
        switch self.search {
        case .everything: break
        case .nothing: conditions.append("false")
        case .query(let match): conditions.append("search @@ \(sql.bind(match))::tsquery")
        }
        let key = self.sortKey(&sql)
        var outer: [String] = []
        let direction = self.query.descending ? "DESC" : "ASC"
        let after = self.query.descending ? "<" : ">"
        if let text = self.query.cursor {
            guard let cursor = PostgresCursor(text: text) else {
                throw FlowError(.invalidRequest, "Parameter 'cursor' is not a cursor from paging.next")
            }
            if self.query.sort == nil {
                outer.append("page.seq \(after) \(sql.bind(cursor.seq))")
            } else {
                outer.append(
                    "(page.rank, page.number, page.text, page.seq) \(after) (\(sql.bind(Int64(cursor.rank))), \(sql.bind(cursor.number))::numeric, \(sql.bind(cursor.text)) COLLATE \"C\", \(sql.bind(cursor.seq)))"
                )
            }
        }
        // Qualified: the select list's `number::text` would otherwise be what `number` names here.
        let order = self.query.sort == nil
            ? "page.seq \(direction)" : "page.rank \(direction), page.number \(direction), page.text \(direction), page.seq \(direction)"
        sql.text = """
            SELECT body, seq, rank, number::text, text FROM (
                SELECT body, seq, \(key.rank) AS rank, \(key.number) AS number, \(key.text) AS text FROM object WHERE \(conditions.joined(separator: " AND "))
            ) AS page\(outer.isEmpty ? "" : " WHERE " + outer.joined(separator: " AND ")) ORDER BY \(order) LIMIT \(sql.bind(Int64(self.query.limit + 1)))
            """
        return PostgresQuery(unsafeSQL: sql.text, binds: sql.bindings)
    }

    /// Runs the page on `connection`; `count` is the collection's kept size.
    func run(_ connection: PostgresConnection, logger: Logger, count: () async throws -> Int) async throws -> ListPage {
        var objects: [String] = []
        objects.reserveCapacity(self.query.limit)
        var last: PostgresCursor?
        var more = false
        let rows = try await connection.query(try self.statement(), logger: logger)
        for try await (body, seq, rank, number, text) in rows.decode((String, Int64, Int32, String, String).self) {
            guard objects.count < self.query.limit else {
                more = true
                break
            }
            objects.append(body)
            if objects.count == self.query.limit { last = PostgresCursor(rank: Int(rank), number: number, text: text, seq: seq) }
        }
        // `total` on a first page, when cheap (SPEC §7.2), as the SQLite store gives it.
        var total: Int?
        if self.query.cursor == nil {
            if self.query.filter.isEmpty && self.search == .everything {
                total = try await count()
            } else if !more {
                total = objects.count
            }
        }
        return ListPage(encodedObjects: objects, next: more ? last?.encoded(sorted: self.query.sort != nil) : nil, total: total)
    }

    /// The sort key's three columns (see the type's comment); all constant for insertion order.
    private func sortKey(_ sql: inout Statement) -> (rank: String, number: String, text: String) {
        switch self.query.sort {
        case nil: return ("0", "0::numeric", "''")
        case "id"?: return ("1", "0::numeric", "id COLLATE \"C\"")
        case let field?:
            let value = "(doc -> \(sql.bind(field)))"
            return (
                "CASE jsonb_typeof(\(value)) WHEN 'number' THEN 0 WHEN 'boolean' THEN 0 WHEN 'string' THEN 1 WHEN 'object' THEN 1 WHEN 'array' THEN 1 ELSE 2 END",
                Self.number(value),
                "(CASE jsonb_typeof(\(value)) WHEN 'string' THEN \(value) #>> '{}' WHEN 'object' THEN \(value)::text WHEN 'array' THEN \(value)::text ELSE '' END) COLLATE \"C\""
            )
        }
    }

    /// A value as SQLite's `json_extract` compares it as a number: numbers, and booleans as 0
    /// or 1; 0 for the rest (whose rank sets them apart).
    private static func number(_ value: String) -> String {
        "(CASE jsonb_typeof(\(value)) WHEN 'number' THEN (\(value))::numeric WHEN 'boolean' THEN (CASE WHEN (\(value))::boolean THEN 1 ELSE 0 END)::numeric ELSE 0::numeric END)"
    }

    /// `field` equals `value` as SQLite's `json_extract(body, field) IS value` decides it: null
    /// matches a missing field too, a number or a boolean matches an equal number or boolean
    /// (true is 1), text matches only text.
    private static func condition(field: String, value: JSONValue, in sql: inout Statement) -> String {
        let extracted = "(doc -> \(field))"
        switch value {
        case .null:
            return "coalesce(\(extracted), 'null'::jsonb) = 'null'::jsonb"
        case .bool(let bool):
            return "(jsonb_typeof(\(extracted)) IN ('number', 'boolean') AND \(Self.number(extracted)) = \(sql.bind(bool ? "1" : "0"))::numeric)"
        case .integer(let integer):
            return "(jsonb_typeof(\(extracted)) IN ('number', 'boolean') AND \(Self.number(extracted)) = \(sql.bind(String(integer)))::numeric)"
        case .number(let number):
            return "(jsonb_typeof(\(extracted)) IN ('number', 'boolean') AND \(Self.number(extracted)) = \(sql.bind(number.description))::numeric)"
        case .string(let string):
            return "\(extracted) = to_jsonb(\(sql.bind(string))::text)"
        case .array, .object:
            return "\(extracted) = \(sql.bind(value.description))::jsonb"
        }
    }

    /// SQL text with numbered placeholders and their values.
    struct Statement {
        var text = ""
        var bindings = PostgresBindings()
        private var count = 0

        /// `value` as the next placeholder (`$n`).
        mutating func bind(_ value: some PostgresNonThrowingEncodable & PostgresDynamicTypeEncodable) -> String {
            self.count += 1
            self.bindings.append(value)
            return "$\(self.count)"
        }
    }
}

/// The LIST cursor as PostgreSQL walks it, in the SQLite store's text format: the last row's
/// sort key (`{"i"}` an integer, `{"d"}` a double, `{"s"}` text, `{"b": true}` missing or null)
/// and its seq, base64url JSON.
struct PostgresCursor {
    let rank: Int
    /// The number, as PostgreSQL's `numeric` text (exact: no round trip through a double).
    let number: String
    let text: String
    let seq: Int64

    init(rank: Int, number: String, text: String, seq: Int64) {
        self.rank = rank
        self.number = number
        self.text = text
        self.seq = seq
    }

    /// The cursor text; for insertion order the key is the seq, as SQLite's is.
    func encoded(sorted: Bool) -> String {
        let key: ListCursor.Key
        if !sorted {
            key = .integer(self.seq)
        } else {
            switch self.rank {
            case 0: key = Int64(self.number).map { .integer($0) } ?? .double(Double(self.number) ?? 0)
            case 1: key = .text(self.text)
            default: key = .missing
            }
        }
        return ListCursor(key: key, seq: self.seq).text
    }

    init?(text: String) {
        guard let cursor = ListCursor(text: text) else { return nil }
        switch cursor.key {
        case .integer(let integer): (self.rank, self.number, self.text) = (0, String(integer), "")
        case .double(let double): (self.rank, self.number, self.text) = (0, double.description, "")
        case .text(let string): (self.rank, self.number, self.text) = (1, "0", string)
        case .missing: (self.rank, self.number, self.text) = (2, "0", "")
        }
        self.seq = cursor.seq
    }
}
