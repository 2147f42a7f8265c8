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
        var conditions = ["collection = ?"]
        var arguments: StatementArguments = [self.collection.name]
        for (field, value) in self.query.filter.sorted(by: { $0.key < $1.key }) {
            conditions.append("json_extract(body, ?) IS ?")
            _ = arguments.append(contentsOf: [Self.path(field), Self.sqlValue(value)])
        }
        if let search = self.query.search, let match = Self.matchExpression(search) {
            conditions.append("id IN (SELECT id FROM object_search WHERE object_search MATCH ? AND collection = ?)")
            _ = arguments.append(contentsOf: [match, self.collection.name])
        }
        let total: Int?
        if self.query.cursor == nil {
            total = try Int.fetchOne(db, sql: "SELECT count(*) FROM object WHERE \(conditions.joined(separator: " AND "))", arguments: arguments)
        } else {
            total = nil
        }

        // Placeholders bind in SQL order: the select list's key, then the WHERE clause.
        let (key, keyArguments) = self.sortKey()
        var pageConditions = conditions
        var pageArguments = keyArguments
        _ = pageArguments.append(contentsOf: arguments)
        if let cursor = self.query.cursor {
            guard let position = Cursor(text: cursor) else { throw FlowError(.invalidRequest, "Parameter 'cursor' is not a cursor from paging.next") }
            pageConditions.append("(\(key), seq) \(self.query.descending ? "<" : ">") (?, ?)")
            _ = pageArguments.append(contentsOf: keyArguments)
            _ = pageArguments.append(contentsOf: [position.key, position.seq])
        }
        let direction = self.query.descending ? "DESC" : "ASC"
        let sql = """
            SELECT body, seq, \(key) AS sort_key FROM object WHERE \(pageConditions.joined(separator: " AND ")) \
            ORDER BY sort_key \(direction), seq \(direction) LIMIT \(self.query.limit + 1)
            """
        let rows = try Row.fetchAll(db, sql: sql, arguments: pageArguments)
        var objects: [JSONObject] = []
        for row in rows.prefix(self.query.limit) {
            objects.append(try SQLiteStore.decode(row["body"]))
        }
        var next: String?
        if rows.count > self.query.limit, let last = rows.prefix(self.query.limit).last {
            next = Cursor(key: last["sort_key"], seq: last["seq"]).text
        }
        return ListPage(objects: objects, next: next, total: total)
    }

    /// The sort key expression and its arguments.
    private func sortKey() -> (String, StatementArguments) {
        switch self.query.sort {
        case nil: return ("seq", [])
        case "id"?: return ("id", [])
        case let field?: return ("coalesce(json_extract(body, ?), x'')", [Self.path(field)])
        }
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

    /// User text as an FTS5 query: every word must appear, as a prefix. Quotes make any text safe.
    static func matchExpression(_ text: String) -> String? {
        let words = text.split(whereSeparator: { $0.isWhitespace }).map { $0.replacing("\"", with: "") }.filter { !$0.isEmpty }
        guard !words.isEmpty else { return nil }
        return words.map { "\"\($0)\"*" }.joined(separator: " ")
    }
}

/// A position in a LIST walk: the last row's sort key and sequence, as opaque base64url text.
struct Cursor {
    let key: DatabaseValue
    let seq: Int64

    init(key: DatabaseValue, seq: Int64) {
        self.key = key
        self.seq = seq
    }

    var text: String {
        let key: JSONValue
        switch self.key.storage {
        case .null, .blob: key = ["b": true]
        case .int64(let integer): key = ["i": .integer(integer)]
        case .double(let double): key = ["d": .number(double)]
        case .string(let string): key = ["s": .string(string)]
        }
        let json = JSONValue.array([key, .integer(self.seq)]).encoded()
        return Data(json).base64EncodedString().replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
    }

    init?(text: String) {
        var base64 = text.replacing("-", with: "+").replacing("_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let value = try? JSONValue(parsing: Array(data)),
            case .array(let parts) = value, parts.count == 2, case .integer(let seq) = parts[1], case .object(let key) = parts[0]
        else { return nil }
        switch (key["i"], key["d"], key["s"], key["b"]) {
        case (.integer(let integer)?, _, _, _): self.key = integer.databaseValue
        case (_, .number(let double)?, _, _): self.key = double.databaseValue
        case (_, .integer(let integer)?, _, _): self.key = Double(integer).databaseValue
        case (_, _, .string(let string)?, _): self.key = string.databaseValue
        case (_, _, _, .bool(true)?): self.key = Data().databaseValue
        default: return nil
        }
        self.seq = seq
    }
}
