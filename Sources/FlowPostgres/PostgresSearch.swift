import FlowCore
import FlowProtocol
import Foundation

/// Full-text search on PostgreSQL with the SQLite store's semantics (FTS5, `unicode61
/// remove_diacritics 2`, every word of the query a prefix of some word of the object): words
/// are runs of letters and digits, compared without case and diacritics. Both sides are made
/// here, not by PostgreSQL's parser (which keeps `x.com` or `core-sw` whole where FTS5 splits
/// them) or its `unaccent` extension: the object's words become a `tsvector` of lexemes with
/// their positions, the query a `tsquery` of phrases of prefixes.
enum PostgresSearch {
    /// How much of a `tsvector` one object's words may fill, in PostgreSQL's accounting (a word
    /// new to the vector costs its bytes and about 8, a repeat 2). PostgreSQL refuses a vector
    /// past 1 MiB, which distinct words of a message within `max_message_bytes` can reach; the
    /// words past this budget are not indexed (SQLite's FTS5 has no such limit).
    static let vectorBudget = 512 * 1024

    /// The object's searchable words as `tsvector` text: each folded word at its position, so
    /// that a query's phrase can ask for words in a row.
    static func vector(of object: JSONObject, in collection: CollectionSpec) -> String {
        guard !collection.searchFields.isEmpty else { return "" }
        var budget = Self.vectorBudget
        var seen = Set<String>()
        var parts: [String] = []
        for (index, word) in Self.words(StoredObject.searchText(object, fields: collection.searchFields)).enumerated() {
            let cost = seen.insert(word).inserted ? word.utf8.count + 8 : 2
            guard cost <= budget else { break }
            budget -= cost
            // Positions past PostgreSQL's last (16,383) share it.
            parts.append("'\(word)':\(min(index + 1, 16383))")
        }
        return parts.joined(separator: " ")
    }

    /// `text` as words: folded (no case, no diacritics), split at anything that is not a letter
    /// or a digit.
    static func words(_ text: String) -> [String] {
        let folded = text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
        var words: [String] = []
        var word = String.UnicodeScalarView()
        for scalar in folded.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber, .letterNumber, .otherNumber, .privateUse:
                word.append(scalar)
            default:
                if !word.isEmpty { words.append(String(word)) }
                word = String.UnicodeScalarView()
            }
        }
        if !word.isEmpty { words.append(String(word)) }
        // PostgreSQL refuses a lexeme of 2 KiB or more; nobody searches for one.
        return words.filter { $0.utf8.count < 2046 }
    }

    /// What a search asks for.
    enum Match: Equatable {
        /// No part at all (empty, blank, only `"`): every object, as on SQLite.
        case everything
        /// A part without a word (`-`): nothing, as in FTS5.
        case nothing
        /// This `tsquery` text.
        case query(String)
    }

    /// The search a caller typed, as the SQLite store reads it: the text's `"` dropped, each
    /// whitespace-separated part a phrase (its words in a row, the last one a prefix), every
    /// phrase required. Words hold letters and digits only, so quoting them is enough.
    static func match(_ text: String) -> Match {
        var unquoted = String.UnicodeScalarView()
        unquoted.append(contentsOf: text.unicodeScalars.lazy.filter { $0 != "\"" })
        let parts = String(unquoted).split(whereSeparator: { $0.isWhitespace })
        guard !parts.isEmpty else { return .everything }
        var phrases: [String] = []
        for part in parts {
            let words = Self.words(String(part))
            guard !words.isEmpty else { return .nothing }
            phrases.append(words.enumerated().map { $0 == words.count - 1 ? "'\($1)':*" : "'\($1)'" }.joined(separator: " <-> "))
        }
        return .query(phrases.joined(separator: " & "))
    }
}
