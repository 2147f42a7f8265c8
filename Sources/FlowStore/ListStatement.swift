import FlowCore
import FlowProtocol
import Foundation
import GRDB

/// One LIST as SQL: filters, full-text search, and keyset paging on (sort key, seq).
///
/// The cursor is the last row's (sort key, seq), so rows that exist for the whole walk come
/// exactly once whatever is inserted or deleted meanwhile (SPEC §7.2). Missing sort values sort
/// as an empty blob: after every value going up, first going down.
struct ListStatement {
    let collection: CollectionSpec
    let query: ListQuery

    func run(_ db: Database) throws -> ListPage {
        let (conditions, conditionArguments) = self.conditions()
        let (sql, arguments) = try self.pageQuery(conditions, conditionArguments)
        var objects: [String] = []
        objects.reserveCapacity(self.query.limit)
        var last: Cursor?
        var more = false
        let rows = try Row.fetchCursor(try self.statement(db, sql), arguments: arguments)
        while let row = try rows.next() {
            guard objects.count < self.query.limit else {
                more = true
                break
            }
            objects.append(row["body"])
            if objects.count == self.query.limit { last = Cursor(key: row["sort_key"], seq: row["seq"]) }
        }
        // `total` on a first page, when cheap (SPEC §7.2): the collection's kept size, or, for a
        // filter or search, the page's own count when the page holds every match. Counting the
        // matches of a larger result reads each of their rows (SQLite 3.40 does not count from
        // an expression index alone): 7 ms for 1,000 of them, 30 times the page.
        var total: Int?
        if self.query.cursor == nil {
            if conditions.count == 1 {
                // Only `collection = ?`: no filter, no search.
                total = try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT objects FROM collection_count WHERE collection = ?"), arguments: [self.collection.name]
                ) ?? 0
            } else if !more {
                total = objects.count
            }
        }
        return ListPage(encodedObjects: objects, next: more ? last?.text : nil, total: total)
    }

    /// The page's SQL, for a test's EXPLAIN QUERY PLAN.
    func pageQuery() throws -> (sql: String, arguments: StatementArguments) {
        let (conditions, arguments) = self.conditions()
        return try self.pageQuery(conditions, arguments)
    }

    /// The page: `limit + 1` rows after the cursor in (sort key, seq) order, the extra one saying
    /// whether there is a next page.
    private func pageQuery(_ conditions: [String], _ arguments: StatementArguments) throws -> (sql: String, arguments: StatementArguments) {
        var conditions = conditions
        var arguments = arguments
        // Placeholders bind in SQL order: the select list's key, then the WHERE clause.
        let (key, keyArguments) = self.sortKey()
        var pageArguments = keyArguments
        _ = pageArguments.append(contentsOf: arguments)
        if let cursor = self.query.cursor {
            guard let position = Cursor(text: cursor) else { throw FlowError(.invalidRequest, "Parameter 'cursor' is not a cursor from paging.next") }
            // After (key, seq), spelled so that an index range on the key applies (SQLite does
            // not match a row value against an expression index's columns).
            let after = self.query.descending ? "<" : ">"
            if key == "seq" {
                conditions.append("seq \(after) ?")
                _ = pageArguments.append(contentsOf: [position.seq])
            } else {
                conditions.append("\(key) \(after)= ? AND (\(key) \(after) ? OR seq \(after) ?)")
                _ = pageArguments.append(contentsOf: keyArguments)
                _ = pageArguments.append(contentsOf: [position.key])
                _ = pageArguments.append(contentsOf: keyArguments)
                _ = pageArguments.append(contentsOf: [position.key, position.seq])
            }
        }
        arguments = pageArguments
        _ = arguments.append(contentsOf: [self.query.limit + 1])
        let direction = self.query.descending ? "DESC" : "ASC"
        let sql = """
            SELECT body, seq, \(key) AS sort_key FROM \(self.table()) WHERE \(conditions.joined(separator: " AND ")) \
            ORDER BY \(key == "seq" ? "" : "sort_key \(direction), ")seq \(direction) LIMIT ?
            """
        return (sql, arguments)
    }

    /// `object`, naming the declared index that answers the page best when one does. SQLite
    /// without statistics weighs an expression index as barely better than the primary key's
    /// `collection = ?` (and worse, as it needs a lookup), so the choice is made here: the index
    /// that also gives the page's order, with the most filtered fields, else the one with the
    /// most filtered fields. A full-text search leaves the choice to SQLite (it drives by rowid).
    func table() -> String {
        guard self.query.search == nil, !self.collection.indexes.isEmpty else { return "object" }
        var best: (fields: [String], ordered: Bool, filtered: Int)?
        for fields in self.collection.indexes {
            let filtered = fields.prefix { self.query.filter[$0] != nil }.count
            let inOrder: Bool
            switch self.query.sort {
            case nil: inOrder = filtered == fields.count
            case "id"?: inOrder = false
            case let sort?: inOrder = filtered == fields.count - 1 && fields.last == sort
            }
            guard filtered > 0 || inOrder else { continue }
            let candidate = (fields: fields, ordered: inOrder, filtered: filtered)
            if let current = best, (current.ordered ? 1 : 0, current.filtered) >= (candidate.ordered ? 1 : 0, candidate.filtered) { continue }
            best = candidate
        }
        guard let best else { return "object" }
        return "object INDEXED BY \(SQLiteStore.indexName(best.fields))"
    }

    /// The WHERE clause's terms (collection, filters, search) and their arguments.
    private func conditions() -> ([String], StatementArguments) {
        var conditions = ["collection = ?"]
        var arguments: StatementArguments = [self.collection.name]
        for (field, value) in self.query.filter.sorted(by: { $0.key < $1.key }) {
            if self.collection.indexedFields.contains(field) {
                // The declared index's own expression, so that the index answers it; null is x''.
                conditions.append("\(Self.indexedExpression(field)) = ?")
                _ = arguments.append(contentsOf: [Self.sqlValue(value) ?? Data()])
            } else {
                conditions.append("json_extract(body, ?) IS ?")
                _ = arguments.append(contentsOf: [Self.path(field), Self.sqlValue(value)])
            }
        }
        if let search = self.query.search, let match = Self.matchExpression(search) {
            conditions.append("seq IN (SELECT rowid FROM object_search WHERE object_search MATCH ?)")
            _ = arguments.append(contentsOf: [match])
        }
        return (conditions, arguments)
    }

    /// A prepared statement, cached per connection unless the query has many filters (so odd
    /// queries cannot grow the cache without bound).
    private func statement(_ db: Database, _ sql: String) throws -> Statement {
        self.query.filter.count <= 4 ? try db.cachedStatement(sql: sql) : try db.makeStatement(sql: sql)
    }

    /// The sort key expression and its arguments.
    private func sortKey() -> (String, StatementArguments) {
        switch self.query.sort {
        case nil: return ("seq", [])
        case "id"?: return ("id", [])
        case let field? where self.collection.indexedFields.contains(field): return (Self.indexedExpression(field), [])
        case let field?: return ("coalesce(json_extract(body, ?), x'')", [Self.path(field)])
        }
    }

    /// A declared field's value as the declared index stores it: the JSON path is a literal (an
    /// index matches only the same expression, never a bound parameter) and a missing or null
    /// value is an empty blob, which sorts after every value, as in an undeclared sort.
    /// Only fields from definitions get here, so the statement cache stays bounded.
    static func indexedExpression(_ field: String) -> String {
        "coalesce(json_extract(body, '\(Self.path(field).replacing("'", with: "''"))'), x'')"
    }

    /// A JSON path naming one top-level member, quoted so any name is safe.
    static func path(_ field: String) -> String {
        "$.\"" + field.replacing("\"", with: "\"\"") + "\""
    }

    static func sqlValue(_ value: JSONValue) -> (any DatabaseValueConvertible)? {
        switch value {
        case .null: nil
        case .bool(let bool): bool ? 1 : 0
        case .integer(let integer): integer
        case .number(let number): number
        case .string(let string): string
        case .array, .object: value.description
        }
    }

    /// User text as an FTS5 query: every word must appear, as a prefix. Quotes make any text safe,
    /// so the text's own `"` go, scalar by scalar: a `"` followed by a combining mark is one
    /// Swift `Character` that a character-wise replace would miss (a fuzzer found it).
    static func matchExpression(_ text: String) -> String? {
        var unquoted = String.UnicodeScalarView()
        unquoted.append(contentsOf: text.unicodeScalars.lazy.filter { $0 != "\"" })
        let words = String(unquoted).split(whereSeparator: { $0.isWhitespace }).filter { !$0.isEmpty }
        guard !words.isEmpty else { return nil }
        return words.map { "\"\($0)\"*" }.joined(separator: " ")
    }
}

/// A position in a LIST walk: the last row's sort key and sequence, in ``ListCursor``'s text.
struct Cursor {
    let key: DatabaseValue
    let seq: Int64

    init(key: DatabaseValue, seq: Int64) {
        self.key = key
        self.seq = seq
    }

    var text: String {
        let key: ListCursor.Key
        switch self.key.storage {
        case .null, .blob: key = .missing
        case .int64(let integer): key = .integer(integer)
        case .double(let double): key = .double(double)
        case .string(let string): key = .text(string)
        }
        return ListCursor(key: key, seq: self.seq).text
    }

    init?(text: String) {
        guard let cursor = ListCursor(text: text) else { return nil }
        switch cursor.key {
        case .integer(let integer): self.key = integer.databaseValue
        case .double(let double): self.key = double.databaseValue
        case .text(let string): self.key = string.databaseValue
        case .missing: self.key = Data().databaseValue
        }
        self.seq = cursor.seq
    }
}
