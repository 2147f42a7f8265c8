/// One of the seven methods of the envelope (SPEC §2).
public enum Method: String, Sendable, Hashable, CaseIterable, Comparable {
    case list = "LIST"
    case open = "OPEN"
    case update = "UPDATE"
    case delete = "DELETE"
    case index = "INDEX"
    case create = "CREATE"
    case run = "RUN"

    /// Whether the method addresses one existing object and so needs an `objectid`.
    public var requiresObjectID: Bool {
        switch self {
        case .open, .update, .delete, .index, .run: true
        case .list, .create: false
        }
    }

    /// Whether the method needs `data`.
    public var requiresData: Bool {
        switch self {
        case .create, .update, .run: true
        case .list, .open, .delete, .index: false
        }
    }

    /// Whether calling twice has the same effect as calling once, so a retry is safe.
    public var isIdempotent: Bool {
        switch self {
        case .list, .open, .index: true
        case .update, .delete, .create, .run: false
        }
    }

    public static func < (lhs: Method, rhs: Method) -> Bool {
        Self.allCases.firstIndex(of: lhs)! < Self.allCases.firstIndex(of: rhs)!
    }
}
