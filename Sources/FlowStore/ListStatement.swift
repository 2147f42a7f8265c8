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
            conditions.append("seq IN (SELECT rowid FROM object_search WHERE object_search MATCH ?)")
            _ = arguments.append(contentsOf: [match])
        }
        let total: Int?
        if self.query.cursor == nil {
            let sql = "SELECT count(*) FROM object WHERE \(conditions.joined(separator: " AND "))"
            total = try Int.fetchOne(try self.statement(db, sql), arguments: arguments)
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
            ORDER BY sort_key \(direction), seq \(direction) LIMIT ?
            """
        _ = pageArguments.append(contentsOf: [self.query.limit + 1])
        var objects: [String] = []
        objects.reserveCapacity(self.query.limit)
        var last: Cursor?
        var more = false
        let rows = try Row.fetchCursor(try self.statement(db, sql), arguments: pageArguments)
        while let row = try rows.next() {
            guard objects.count < self.query.limit else {
                more = true
                break
            }
            objects.append(row["body"])
            if objects.count == self.query.limit { last = Cursor(key: row["sort_key"], seq: row["seq"]) }
        }
        return ListPage(encodedObjects: objects, next: more ? last?.text : nil, total: total)
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
        return Base64URL.encode(JSONValue.array([key, .integer(self.seq)]).encoded())
    }

    init?(text: String) {
        guard let bytes = Base64URL.decode(text), let value = try? JSONValue(parsing: bytes),
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

/// Base64url without padding (RFC 4648 §5), as cursors use it.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var group = UInt32(0)
            for (offset, byte) in chunk.enumerated() { group |= UInt32(byte) << (16 - 8 * offset) }
            for position in 0...chunk.count { output.append(Self.alphabet[Int(group >> (18 - 6 * position)) & 0x3F]) }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(digits.count * 3 / 4)
        var group = UInt32(0)
        var bits = 0
        for digit in digits {
            let value: UInt8
            switch digit {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = digit - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = digit - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = digit - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "_"): value = 63
            default: return nil
            }
            group = group << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: group >> UInt32(bits)))
            }
        }
        return output
    }
}
