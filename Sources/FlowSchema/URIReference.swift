import Foundation

/// Just enough of RFC 3986 reference resolution for `$id` and `$ref` inside one document.
enum URIReference {
    /// `reference` resolved against `base`; nil when it cannot be (a relative reference against a URN).
    static func resolve(_ reference: String, against base: String) -> String? {
        if Self.hasScheme(reference) { return reference }
        if reference.hasPrefix("#") { return Self.stripFragment(base) + reference }
        guard base.contains("://"), let baseURL = URL(string: Self.stripFragment(base)),
            let resolved = URL(string: reference, relativeTo: baseURL)
        else { return nil }
        return resolved.absoluteString
    }

    /// The URI without its fragment.
    static func stripFragment(_ uri: String) -> String {
        uri.firstIndex(of: "#").map { String(uri[..<$0]) } ?? uri
    }

    /// (URI without fragment, fragment without `#`).
    static func split(_ uri: String) -> (String, String) {
        guard let hash = uri.firstIndex(of: "#") else { return (uri, "") }
        return (String(uri[..<hash]), String(uri[uri.index(after: hash)...]))
    }

    private static func hasScheme(_ reference: String) -> Bool {
        guard let colon = reference.firstIndex(of: ":"), colon != reference.startIndex else { return false }
        let scheme = reference[..<colon]
        return scheme.first!.isLetter && scheme.allSatisfy { $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }
    }
}
