public import FlowCore
import FlowProtocol
import Foundation
import GRDB

/// Declared indexes (`indexes` in a collection's definition): one SQLite expression index per
/// declared field list, on `(collection, <each field's value>, seq)`, so that a LIST filtering
/// on the leading fields and sorting on the next one (or on insertion order) walks the index
/// instead of the collection, whatever its size.
///
/// They are not migrations: the definitions own them. At start the store builds the declared
/// ones that are missing and drops the `object_index_*` ones nothing declares any more, in one
/// transaction; the migrated schema is never touched. An index is named by a hash of its field
/// list, so collections that declare the same list share it.
extension SQLiteStore {
    public func declareIndexes(_ collections: [CollectionSpec]) async throws -> IndexChanges {
        self.declared.withLock { $0 = collections }
        return try await self.write { db in try Self.applyIndexes(db, collections) }
    }

    /// Builds and drops, in the caller's transaction; also run after a restore, whose snapshot
    /// has the indexes of the day it was taken.
    static func applyIndexes(_ db: Database, _ collections: [CollectionSpec]) throws -> IndexChanges {
        var wanted: [String: [String]] = [:]
        for fields in collections.flatMap(\.indexes) { wanted[Self.indexName(fields)] = fields }
        let existing = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name GLOB 'object_index_*'"))
        var changes = IndexChanges()
        for name in existing.subtracting(wanted.keys).sorted() {
            try db.execute(sql: "DROP INDEX \(name)")
            changes.dropped.append(name)
        }
        for (name, fields) in wanted.sorted(by: { $0.key < $1.key }) where !existing.contains(name) {
            let values = fields.map(ListStatement.indexedExpression).joined(separator: ", ")
            try db.execute(sql: "CREATE INDEX \(name) ON object (collection, \(values), seq)")
            changes.built.append(fields)
        }
        return changes
    }

    /// `object_index_` and 16 hex digits of a 64-bit FNV-1a hash of the field list.
    static func indexName(_ fields: [String]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in fields.joined(separator: "\u{0}").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        return "object_index_" + String(repeating: "0", count: 16 - digits.count) + digits
    }
}
