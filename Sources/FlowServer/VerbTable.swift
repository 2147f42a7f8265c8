import FlowCore
import FlowProtocol
import HTTPTypes

/// SPEC §6.3 as one table: which of the seven methods each HTTP verb carries, on a path with an
/// object id and on one without, the verb's default first. The decoder, the OpenAPI document
/// and the `Allow` header all read it, so they cannot disagree.
enum VerbTable {
    /// The verbs that carry calls, in the order they are documented.
    static let verbs: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]

    /// The methods `verb` carries for a call with or without an object id, its default first;
    /// empty when it carries none (a PUT needs an object id). Tables, not literals: every HTTP
    /// request looks here.
    static func methods(of verb: HTTPRequest.Method, withObjectID: Bool) -> [FlowProtocol.Method] {
        switch verb {
        case .get: withObjectID ? Self.getItem : Self.getCollection
        case .post: withObjectID ? Self.postItem : Self.postCollection
        case .put, .patch: withObjectID ? Self.update : Self.none
        case .delete: withObjectID ? Self.delete : Self.none
        default: Self.none
        }
    }

    /// Every method `verb` carries, with an object id or without.
    static func anyMethods(of verb: HTTPRequest.Method) -> [FlowProtocol.Method] {
        switch verb {
        case .get: Self.getAny
        case .post: Self.postAny
        case .put, .patch: Self.update
        case .delete: Self.delete
        default: Self.none
        }
    }

    /// The methods `verb` carries besides its default (``methods(of:withObjectID:)`` without its first).
    static func alternatives(of verb: HTTPRequest.Method, withObjectID: Bool) -> [FlowProtocol.Method] {
        switch verb {
        case .get where withObjectID: Self.getItemAlternatives
        case .post where withObjectID: Self.postItemAlternatives
        default: Self.none
        }
    }

    private static let getItem: [FlowProtocol.Method] = [.open, .index, .delete]
    private static let getItemAlternatives: [FlowProtocol.Method] = [.index, .delete]
    private static let postItemAlternatives: [FlowProtocol.Method] = [.run]
    private static let getCollection: [FlowProtocol.Method] = [.list]
    private static let getAny: [FlowProtocol.Method] = [.open, .index, .delete, .list]
    private static let postItem: [FlowProtocol.Method] = [.update, .run]
    private static let postCollection: [FlowProtocol.Method] = [.create]
    private static let postAny: [FlowProtocol.Method] = [.update, .run, .create]
    private static let update: [FlowProtocol.Method] = [.update]
    private static let delete: [FlowProtocol.Method] = [.delete]
    private static let none: [FlowProtocol.Method] = []

    /// The methods of `definition` a call over HTTP can reach.
    static func reachable(_ definition: EndpointDefinition) -> Set<FlowProtocol.Method> {
        definition.methods.subtracting(definition.webSocketOnlyMethods)
    }

    /// The verbs that reach at least one of `definition`'s methods on such a path, for `Allow`.
    static func allowed(_ definition: EndpointDefinition, withObjectID: Bool) -> [HTTPRequest.Method] {
        let reachable = Self.reachable(definition)
        return Self.verbs.filter { verb in Self.methods(of: verb, withObjectID: withObjectID).contains(where: reachable.contains) }
    }

    /// `Allow`'s value: `verbs` and OPTIONS (the CORS preflight).
    static func allowHeader(_ verbs: [HTTPRequest.Method]) -> String {
        (verbs.map(\.rawValue) + ["OPTIONS"]).joined(separator: ", ")
    }
}
