public import FlowProtocol

/// A namespace pattern in a scope (SPEC §9.3): slash-separated segments, each a namespace
/// segment or `*`.
///
/// - A `*` in the middle matches exactly one segment.
/// - A `*` at the end matches one or more segments, so `inventory/*` covers `inventory/device`
///   and `inventory/device/ports`, and `*` alone matches every namespace.
/// - A `*` first segment never matches the reserved applications `auth` and `system`: those are
///   granted only by naming them (`auth/*`).
public struct NamespacePattern: Sendable, Hashable, CustomStringConvertible {
    /// The applications a leading `*` never matches.
    public static let reservedApplications: Set<Substring> = ["auth", "system"]

    let segments: [Substring]

    /// The pattern `text` spells, or nil when it is not one.
    public init?(_ text: String) {
        let segments = text.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.isEmpty, segments.count <= Namespace.maxSegments, text.utf8.count <= Namespace.maxLength else { return nil }
        for segment in segments where segment != "*" {
            // A literal segment follows the namespace rules; a one-segment namespace is exactly that.
            guard Namespace(segment)?.rawValue == String(segment) else { return nil }
        }
        self.segments = segments
    }

    public var description: String { self.segments.joined(separator: "/") }

    /// Whether the pattern matches `namespace`. Runs on every call, so it walks the namespace's
    /// text in place instead of splitting it.
    public func matches(_ namespace: Namespace) -> Bool {
        let text = namespace.rawValue.utf8
        var start = text.startIndex
        let last = self.segments.count - 1
        for (index, segment) in self.segments.enumerated() {
            let end = text[start...].firstIndex(of: UInt8(ascii: "/")) ?? text.endIndex
            let name = Substring(namespace.rawValue[start..<end])
            if segment == "*" {
                if index == 0 && Self.reservedApplications.contains(where: { $0 == name }) { return false }
                if index == last { return true }
            } else if segment != name {
                return false
            }
            guard end != text.endIndex else { return index == last }
            start = text.index(after: end)
        }
        return false
    }

    /// Whether every namespace `other` matches, this pattern matches too.
    public func covers(_ other: NamespacePattern) -> Bool {
        for (index, segment) in self.segments.enumerated() {
            guard index < other.segments.count else { return false }
            let theirs = other.segments[index]
            let theirsIsTrailingStar = theirs == "*" && index == other.segments.count - 1
            if segment == "*" {
                if index == 0 && Self.reservedApplications.contains(theirs) { return false }
                if index == self.segments.count - 1 { return true }
                // A fixed-depth `*` cannot cover theirs matching any depth.
                if theirsIsTrailingStar { return false }
            } else if segment != theirs {
                return false
            }
        }
        return other.segments.count == self.segments.count
    }
}

/// One scope (SPEC §9.3): a call scope `<namespace pattern>:<methods>` such as
/// `inventory/*:LIST,OPEN,INDEX` or `*:*`, or a provide scope `provide:<namespace pattern>`,
/// which allows registering providers and nothing else.
public enum Scope: Sendable, Hashable, CustomStringConvertible {
    case call(NamespacePattern, methods: Set<FlowProtocol.Method>)
    case provide(NamespacePattern)

    /// The scope `text` spells, or nil when it is not one. Methods are upper case, as on the wire.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let head = String(text[..<colon])
        let tail = text[text.index(after: colon)...]
        if head == "provide" {
            guard let pattern = NamespacePattern(String(tail)) else { return nil }
            self = .provide(pattern)
            return
        }
        guard let pattern = NamespacePattern(head) else { return nil }
        if tail == "*" {
            self = .call(pattern, methods: Set(FlowProtocol.Method.allCases))
            return
        }
        var methods = Set<FlowProtocol.Method>()
        for name in tail.split(separator: ",", omittingEmptySubsequences: false) {
            guard let method = FlowProtocol.Method(rawValue: String(name)) else { return nil }
            methods.insert(method)
        }
        self = .call(pattern, methods: methods)
    }

    /// The canonical text: methods in the protocol's order, or `*` for all seven.
    public var description: String {
        switch self {
        case .provide(let pattern):
            return "provide:\(pattern)"
        case .call(let pattern, let methods):
            if methods.count == FlowProtocol.Method.allCases.count { return "\(pattern):*" }
            return "\(pattern):" + FlowProtocol.Method.allCases.filter(methods.contains).map(\.rawValue).joined(separator: ",")
        }
    }

    /// Whether this scope allows calling `method` on `namespace`.
    public func allows(_ method: FlowProtocol.Method, on namespace: Namespace) -> Bool {
        guard case .call(let pattern, let methods) = self else { return false }
        return methods.contains(method) && pattern.matches(namespace)
    }

    /// Whether this scope allows providing `namespace`.
    public func allowsProviding(_ namespace: Namespace) -> Bool {
        guard case .provide(let pattern) = self else { return false }
        return pattern.matches(namespace)
    }

    /// Whether everything `other` allows, this scope allows too (a token may narrow, never widen).
    public func covers(_ other: Scope) -> Bool {
        switch (self, other) {
        case (.call(let mine, let myMethods), .call(let theirs, let theirMethods)):
            return theirMethods.isSubset(of: myMethods) && mine.covers(theirs)
        case (.provide(let mine), .provide(let theirs)):
            return mine.covers(theirs)
        default:
            return false
        }
    }
}

extension Sequence<Scope> {
    /// Whether one of the scopes allows calling `method` on `namespace`.
    public func allow(_ method: FlowProtocol.Method, on namespace: Namespace) -> Bool {
        self.contains { $0.allows(method, on: namespace) }
    }

    /// Whether each of `others` is covered by one of these scopes. Conservative: a scope covered
    /// only by several of these together counts as not covered.
    public func cover(_ others: some Sequence<Scope>) -> Bool {
        others.allSatisfy { other in self.contains { $0.covers(other) } }
    }
}
